"""permessage-deflate as negotiated with a real station client (the `websockets` client, which offers it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import websockets
from typer.testing import CliRunner

from api.cli.main import app as cli
from api.context import Services
from api.ocpp.settings import OcppSettings
from api.ocpp.ws_protocol import uvicorn_ws_options
from tests.api.ocpp.conftest import basic, register, run, serving


async def _negotiate(url: str, station_id: str) -> str | None:
    """Connect, exchange a few messages (compressed when negotiated) and return the server's extension answer."""
    async with websockets.connect(f"{url}/{station_id}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                  additional_headers=basic(station_id), compression="deflate") as ws:
        assert ws.response is not None
        for i in range(5):  # several messages: a stateless peer must start every message from an empty window
            await ws.send(json.dumps([2, f"hb-{i}", "Heartbeat", {}]))
            answer = json.loads(await ws.recv())
            assert answer[0] == 3 and answer[1] == f"hb-{i}" and "currentTime" in answer[2], answer
        return ws.response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize(("mode", "expected"), [
    ("stateless", {"permessage-deflate", "server_no_context_takeover", "client_no_context_takeover"}),
    ("context", {"permessage-deflate"}),
    ("off", None),
])
def test_compression_mode_is_what_the_station_negotiates(services: Services, ocpp_settings: OcppSettings,
                                                         mode: str, expected: set[str] | None) -> None:
    register(services, f"CMP-{mode}")
    with serving(services, ocpp_settings.model_copy(update={"ws_compression": mode})) as server:
        header = run(_negotiate(server.url, f"CMP-{mode}"))
    if expected is None:
        assert header is None
        return
    assert isinstance(header, str)
    params = {part.strip().split("=")[0] for part in header.split(";")}
    assert expected <= params, header
    if mode == "context":
        assert "server_no_context_takeover" not in params and "client_no_context_takeover" not in params


def test_unknown_mode_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="PNC_OCPP_WS_COMPRESSION must be one of stateless, context, off"):
        uvicorn_ws_options("gzip")
    monkeypatch.setenv("PNC_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PNC_OCPP_WS_COMPRESSION", "gzip")
    res = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert res.exit_code == 1
    assert "PNC_OCPP_WS_COMPRESSION must be one of" in res.output
    assert "Traceback" not in res.output
