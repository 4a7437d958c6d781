"""Schemathesis against our OpenAPI spec: generated (valid and invalid) requests to every operation, as an admin
so handlers are reached. Contract: never a 5xx, and every error is problem+json. Bounded for the default suite
(PNC_FUZZ_EXAMPLES per operation); ``PNC_FUZZ_LONG=1 -m slow`` runs a longer campaign."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import schemathesis

# Imported here, at collection, rather than lazily by ``from_dict`` inside the test: pytest rewrites this plugin's
# modules with ast.parse, and CPython 3.11's AST converter keeps its recursion depth in shared state, so a parse
# racing another thread's (3.11 tracebacks call ast.parse for their carets, e.g. a background thread logging an
# exception) dies with "SystemError: AST constructor recursion depth mismatch" (seen in CI).
import schemathesis.specs.openapi.schemas
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.context import Services

LONG = pytest.mark.skipif(not os.environ.get("PNC_FUZZ_LONG"), reason="long fuzz campaign: set PNC_FUZZ_LONG=1 ("
                            "marked slow; the default suite runs the bounded version)")
EXAMPLES = int(os.environ.get("PNC_FUZZ_EXAMPLES", "10"))


def _send(client: TestClient, case: schemathesis.Case, token: str) -> httpx.Response:
    """Send a generated case through the app's own TestClient (one event loop: the app's background tasks, e.g.
    the OCPP runtime, are bound to the lifespan loop, so schemathesis' own ASGI transport cannot be used)."""
    kw = case.as_transport_kwargs(base_url="http://testserver", headers={"Authorization": f"Bearer {token}"})
    headers = {k: v for k, v in kw.get("headers", {}).items() if k.lower() not in ("connection", "accept-encoding")}
    extra: dict[str, Any] = {}
    if "json" in kw:
        extra["json"] = kw["json"]
    elif kw.get("data") is not None:
        data = kw["data"]
        extra["content" if isinstance(data, bytes | str) else "data"] = data
    if kw.get("files"):
        extra["files"] = kw["files"]
    return client.request(kw["method"], kw["url"], params=kw.get("params") or None, headers=headers,
                          cookies=kw.get("cookies") or None, **extra)


def _fuzz(services: Services, admin_token: str, examples: int) -> int:
    app = create_app(services=services)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        # the spec is fetched through our client: schemathesis' ASGI loader would start a second lifespan
        schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # valid requests (reach the handlers) and schema-violating ones (reach the validation layer)
            strategy = st.one_of(operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
                                 operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))

            @given(case=strategy)
            @settings(max_examples=examples, deadline=None, database=None, derandomize=not os.environ.get("PNC_FUZZ_LONG"),
                      suppress_health_check=list(HealthCheck),
                      # no explain phase: it parses source deep in the stack, which crashed CPython 3.11.7 once
                      # ("AST constructor recursion depth mismatch"); a real failure still fails the test
                      phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
            def run(case: schemathesis.Case) -> None:
                response = _send(client, case, admin_token)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500 and response.status_code != 503:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
                elif response.status_code >= 400 and \
                        "application/problem+json" not in str(response.headers.get("content-type")):
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} not problem+json")

            run()
    assert failures == [], sorted(set(failures))[:20]
    assert any(200 <= s < 300 for s in statuses), statuses  # handlers were really reached
    assert 422 in statuses, statuses  # and invalid requests were generated
    print(f"REST fuzz: {operations} operations, status codes {dict(sorted(statuses.items()))}")
    return operations


def test_rest_fuzz_no_server_errors(services: Services, admin_token: str) -> None:
    assert _fuzz(services, admin_token, EXAMPLES) >= 10


@pytest.mark.slow
@LONG
def test_rest_fuzz_long(services: Services, admin_token: str) -> None:
    _fuzz(services, admin_token, 300)



