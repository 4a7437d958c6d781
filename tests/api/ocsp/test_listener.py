"""The dedicated OCSP listener at the HTTP level: pipelining order, connection handling, misuse, metrics.

(The OCSP semantics — openssl as the client, good/revoked, GET, cache headers, hostile bodies — run against both
front ends in test_ocsp_interop.py.)"""

from __future__ import annotations

import socket
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from api.ocsp_listener import OcspListener
from api.ocsp_stats import OcspStats
from tests.api.conftest import token_for
from tests.api.ocsp.conftest import Server, issue_station

pytestmark = pytest.mark.parametrize("server", ["listener"], indirect=True)


def _request(server: Server, *, nonce: bool = False) -> bytes:
    issued = issue_station(server.services)
    issuer = server.services.authority.ca_certificate(server.services.authority.ca("csms-sub"))
    builder = ocsp.OCSPRequestBuilder().add_certificate(issued.certificate, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _post(body: bytes, *, version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    return (b"POST /ocsp HTTP/" + version + b"\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)


def _read_responses(sock: socket.socket, count: int, timeout: float = 10) -> list[tuple[int, dict[str, str], bytes]]:
    """Minimal HTTP/1.1 response reader (content-length framing), to see pipelined answers one by one."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            buf += sock.recv(65536)
        out.append((status, headers, buf[:length]))
        buf = buf[length:]
    return out


def _connect(server: Server) -> socket.socket:
    port = int(server.ocsp.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_pipelined_requests_are_answered_in_order_even_when_the_first_is_signed_on_demand(server: Server) -> None:
    nonced, cached = _request(server, nonce=True), _request(server)
    httpx.post(f"{server.ocsp}/ocsp", content=cached, headers={"Content-Type": "application/ocsp-request"})
    with _connect(server) as sock:
        sock.sendall(_post(nonced) + _post(cached) + b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = _read_responses(sock, 3)
    assert [a[0] for a in answers] == [200, 200, 404]
    first, second = (ocsp.load_der_ocsp_response(a[2]) for a in answers[:2])
    assert first.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    assert answers[0][1]["cache-control"] == "no-store"  # a nonced answer is unique to its request
    assert "max-age=" in answers[1][1]["cache-control"] and second.certificate_status is ocsp.OCSPCertStatus.GOOD
    for _, headers, _ in answers:
        assert headers["x-request-id"] and parsedate_to_datetime(headers["date"])
    assert len({h["x-request-id"] for _, h, _ in answers}) == 3


def test_http_1_0_and_connection_close_end_the_connection(server: Server) -> None:
    body = _request(server)
    for request in (_post(body, version=b"1.0"), _post(body, extra=b"Connection: close\r\n")):
        with _connect(server) as sock:
            sock.sendall(request)
            answers = _read_responses(sock, 1)
            assert answers[0][0] == 200 and answers[0][1]["connection"] == "close"
            assert sock.recv(1) == b""  # closed by the server


def test_misuse_gets_http_errors_and_the_connection_survives_where_it_can(server: Server) -> None:
    body = _request(server)
    with _connect(server) as sock:
        sock.sendall(b"PUT /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                     + _post(body).replace(b"application/ocsp-request", b"text/plain")
                     + b"GET /ocsp HTTP/1.1\r\nHost: x\r\n\r\n" + _post(body))
        answers = _read_responses(sock, 4)
    assert [a[0] for a in answers] == [405, 415, 200, 200]
    assert answers[0][1]["allow"] == "GET, POST"
    assert ocsp.load_der_ocsp_response(answers[2][2]).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert ocsp.load_der_ocsp_response(answers[3][2]).certificate_status is ocsp.OCSPCertStatus.GOOD
    with _connect(server) as sock:  # over the body limit: 413, then the connection is closed
        sock.sendall(_post(b"\x30" * (64 * 1024 + 10)))
        answers = _read_responses(sock, 1)
        assert answers[0][0] == 413
    with _connect(server) as sock:  # not HTTP at all
        sock.sendall(b"\x16\x03\x01\x02\x00 TLS hello to a plain port\r\n\r\n")
        answers = _read_responses(sock, 1)
        assert answers[0][0] == 400 and sock.recv(1) == b""
    with _connect(server) as sock:  # Expect: 100-continue (curl with larger bodies) is honoured
        sock.sendall(_post(body, extra=b"Expect: 100-continue\r\n"))
        answers = _read_responses(sock, 2)
        assert [a[0] for a in answers][-1] == 200


def test_idle_keep_alive_connections_are_closed(server: Server) -> None:
    assert server.services.settings.ocsp_keep_alive_seconds == 15.0  # the default; shortened on the live listener
    _live_listener(server).keep_alive = 0.3
    with _connect(server) as sock:
        sock.sendall(_post(_request(server)))
        assert _read_responses(sock, 1)[0][0] == 200
        sock.settimeout(10)
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the sweeper
        assert time.monotonic() - started < 8


def test_answers_are_counted_in_the_metrics(server: Server) -> None:
    body = _request(server)
    before = _live_listener(server).stats.counts["cached"]
    for _ in range(3):
        httpx.post(f"{server.ocsp}/ocsp", content=body, headers={"Content-Type": "application/ocsp-request"})
    assert _live_listener(server).stats.counts["cached"] >= before + 2
    token = token_for(server.services, "auditor")
    metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert 'pnc_ocsp_requests_total{outcome="cached"}' in metrics


def _live_listener(server: Server) -> OcspListener:
    listener = server.app.state.ocsp_listener
    assert isinstance(listener, OcspListener)
    return listener


def test_a_port_that_is_taken_is_one_clear_error(server: Server) -> None:
    import asyncio

    with socket.socket() as taken:  # a plain listener without SO_REUSEPORT holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listener = OcspListener(server.services, OcspStats(), max_body_bytes=1024)
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port} \\(PNC_OCSP_PORT\\)"):
            asyncio.run(listener.start("127.0.0.1", port))
