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


def _ocsp_request(client: TestClient, services: Services) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    token = token_for(services, "csms")
    issued = client.post("/api/v1/certificates", headers={"Authorization": f"Bearer {token}"},
                         json={"kind": "station-client", "csr": make_csr(p256(), CN="SN-9", O="Test CPO").decode()})
    assert issued.status_code == 201, issued.text
    chain = x509.load_pem_x509_certificates(issued.json()["chain_pem"].encode())
    req = ocsp.OCSPRequestBuilder().add_certificate(chain[0], chain[1], hashes.SHA1()).build()
    return req.public_bytes(serialization.Encoding.DER)


def test_ocsp_requests_are_counted_timed_and_carry_request_ids(client: TestClient, services: Services) -> None:
    body = _ocsp_request(client, services)
    headers = {"Content-Type": "application/ocsp-request"}
    first = client.post("/ocsp", content=body, headers=headers)
    second = client.post("/ocsp", content=body, headers={**headers, "X-Request-ID": "lb-7f3a"})
    assert first.status_code == second.status_code == 200
    assert second.headers["x-request-id"] == "lb-7f3a"  # the load balancer's id is kept
    generated = {first.headers["x-request-id"], client.post("/ocsp", content=body, headers=headers)
                 .headers["x-request-id"]}
    assert len(generated) == 2  # unique per request
    assert client.get("/ocsp/%%%not-base64").status_code == 200  # malformedRequest, an OCSP-level error
    assert client.put("/ocsp", content=body).status_code == 405
    assert client.get("/crl/none.crl").headers.get("x-request-id")
    samples = _samples(client.get("/metrics", headers={"Authorization": f"Bearer {token_for(services, 'auditor')}"})
                       .text)
    outcome = {o: samples[("pnc_ocsp_requests_total", (("outcome", o),))]
               for o in ("cached", "signed", "try_later", "error", "rejected")}
    assert outcome["cached"] + outcome["signed"] == 3 and outcome["cached"] >= 2  # repeats come from memory
    assert outcome["error"] == 1 and outcome["rejected"] == 1 and outcome["try_later"] == 0
    assert samples[("pnc_ocsp_request_seconds_count", ())] == 5
    assert 0 < samples[("pnc_ocsp_request_seconds_sum", ())] < 5
    assert samples[("pnc_ocsp_cache_hit_ratio", ())] == outcome["cached"] / 3
    assert samples[("pnc_ocsp_cached_responses", ())] >= 1


def test_outbox_depth_age_and_job_progress_are_exported(client: TestClient, services: Services) -> None:
    import datetime as dt

    from pki import stations
    from pki.store import lifecycle_repo, ocpp_repo
    from pki.store.models import LifecycleJob
    from pki.store.ocpp_models import OcppOutbox

    stations.register_station(services.db, stations.StationSpec(
        station_id="MET-1", serial_number="SN-MET-1", organization="Test CPO", secc_ids=(), security_profile=1,
        password="station-password-0123456789"), scrypt_n=2**10)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    ocpp_repo.enqueue(services.db, [OcppOutbox(station_id="MET-1", action="GetInstalledCertificateIds",
                                               payload="{}", created_at=old) for _ in range(3)])
    job = lifecycle_repo.add_job(services.db, LifecycleJob(kind="root-rotate", target="v2g-root", status="running",
                                                           phase="rollout"))
    assert job.id is not None
    lifecycle_repo.add_items(services.db, job.id, ["MET-1", "MET-2"], dt.datetime.now(dt.UTC))
    samples = _samples(client.get("/metrics", headers={"Authorization": f"Bearer {token_for(services, 'auditor')}"})
                       .text)
    assert samples[("pnc_outbox_rows", (("delivery", "direct"), ("status", "pending")))] == 3
    assert 590 < samples[("pnc_outbox_oldest_age_seconds", (("delivery", "direct"), ("status", "pending")))] < 900
    assert samples[("pnc_jobs", (("kind", "root-rotate"), ("status", "running")))] == 1
    assert samples[("pnc_job_items", (("job_id", str(job.id)), ("kind", "root-rotate"), ("phase", "rollout"),
                                      ("state", "pending")))] == 2
    assert samples[("pnc_ocpp_connected_stations", (("version", "2.0.1"),))] == 0
