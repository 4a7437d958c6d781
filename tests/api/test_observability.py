"""Request ids, JSON logs and Prometheus metrics (scraped and parsed by prometheus_client's own parser)."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.context import Services
from api.observability import JsonFormatter, request_id_var
from tests.api.conftest import token_for
from tests.helpers import make_csr, p256, rsa_key


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "csms-abc.123"}).headers["x-request-id"] == "csms-abc.123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"}).headers["x-request-id"]
    assert len(generated) == 32 and "\n" not in generated


def test_metrics_require_a_token_and_count_issuance(client: TestClient, services: Services) -> None:
    assert client.get("/metrics").status_code == 401
    token = token_for(services, "csms")
    auth = {"Authorization": f"Bearer {token}"}
    ok = client.post("/api/v1/certificates", headers=auth,
                     json={"kind": "station-client", "csr": make_csr(p256(), CN="SN-1", O="Test CPO").decode()})
    assert ok.status_code == 201
    bad = client.post("/api/v1/certificates", headers=auth,
                      json={"kind": "station-client", "csr": make_csr(rsa_key(1024), CN="SN-1", O="X").decode()})
    assert bad.status_code == 422
    text = client.get("/metrics", headers={"Authorization": f"Bearer {token_for(services, 'auditor')}"}).text
    samples = _samples(text)
    assert samples[("pnc_issuance_total", (("kind", "station-client"), ("outcome", "issued")))] == 1
    assert samples[("pnc_issuance_total", (("kind", "station-client"), ("outcome", "refused")))] == 1
    assert samples[("pnc_issuance_seconds_count", (("kind", "station-client"),))] == 1
    assert samples[("pnc_http_requests_total", (("method", "POST"), ("route", "/api/v1/certificates"),
                                                ("status", "201")))] == 1
    assert samples[("pnc_certificates_expiring", (("window", "90d"),))] >= 0
    assert samples[("pnc_certificates", (("status", "valid"),))] >= 12  # CA certificates + the one leaf
    assert samples[("pnc_certificate_authorities", (("status", "active"),))] == 13


def test_json_log_lines_carry_the_request_id() -> None:
    token = request_id_var.set("rid-42")
    try:
        record = logging.LogRecord("pnc.test", logging.INFO, __file__, 1, "issued %s", ("abc",), None)
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["msg"] == "issued abc" and line["request_id"] == "rid-42" and line["level"] == "info"
    try:
        raise ValueError("secret input data")
    except ValueError:
        import sys

        record = logging.LogRecord("pnc.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["error"] == "ValueError" and "secret input data" not in json.dumps(line)
