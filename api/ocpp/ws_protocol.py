"""WebSocket compression for the OCPP endpoint, chosen for memory per held connection.

OCPP-J recommends permessage-deflate (RFC 7692), and uvicorn offers it with context takeover in both directions:
each connection then keeps a zlib compressor (~38 KiB at window 2^12, memLevel 5) and a decompressor with its
window (~11 KiB) for as long as the station stays connected — about half of what an idle station costs the process
(measured with tracemalloc: 49 of ~100 KiB). A PKI endpoint holds many stations that mostly sit idle and exchange
few, rarely repetitive messages, so by default pnc-pki keeps compression but negotiates *no context takeover* in
both directions (``server_no_context_takeover`` and ``client_no_context_takeover``, which RFC 7692 §7.1.1 lets a
server put in its answer): every message is compressed on its own and no zlib state outlives it.

``PNC_OCPP_WS_COMPRESSION``: ``stateless`` (default), ``context`` (uvicorn's behaviour: better ratio for streams
of similar messages, ~49 KiB more per connection) or ``off`` (no permessage-deflate).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol

COMPRESSION_MODES = ("stateless", "context", "off")


def stateless_deflate() -> ServerPerMessageDeflateFactory:
    """permessage-deflate that keeps no zlib state between messages (window 2^12 when the station negotiates it)."""
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )


class StatelessDeflateProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol with :func:`stateless_deflate` as its only extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same construction as the parent's, with the extension replaced; nothing has used the connection yet.
        self.conn = ServerProtocol(extensions=[stateless_deflate()], max_size=self.config.ws_max_size,
                                   logger=self.conn.logger)


def uvicorn_ws_options(mode: str) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that select the compression ``mode``."""
    if mode == "stateless":
        return {"ws": StatelessDeflateProtocol}
    if mode == "context":
        return {"ws": "websockets-sansio", "ws_per_message_deflate": True}
    if mode == "off":
        return {"ws": "websockets-sansio", "ws_per_message_deflate": False}
    raise ValueError(f"PNC_OCPP_WS_COMPRESSION must be one of {', '.join(COMPRESSION_MODES)}, not {mode!r}")
