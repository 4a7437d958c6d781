"""Interop: `openssl ocsp` and `openssl crl` against the running service (uvicorn on a free port)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from tests.api.conftest import token_for
from tests.api.ocsp.conftest import BINDINGS, Server, files_for, issue_secc, issue_station, openssl_ocsp, status_line

pytestmark = pytest.mark.interop


_TOKENS: dict[int, str] = {}


def _revoke(server: Server, serial: str, reason: str) -> httpx.Response:
    token = _TOKENS.get(id(server)) or _TOKENS.setdefault(id(server), token_for(server.services, "operator"))
    return httpx.post(f"{server.url}/api/v1/certificates/serial/{serial}/revoke", json={"reason": reason},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)


@BINDINGS
def test_good_then_revoked_post_sha1_and_sha256(server: Server) -> None:
    issued = issue_station(server.services)
    f = files_for(server.services, issued, server.tmp, "cs")
    url = f"{server.ocsp}/ocsp"
    for sha in (None, "sha256"):  # SHA-1 (RFC 5019) and SHA-256 (RFC 9919 / OCPP) CertIDs
        for nonce in ((), ("-no_nonce",)):  # nonce: signed on demand; no nonce: the pre-signed path
            res = openssl_ocsp(f, url, *nonce, sha=sha)
            assert "Response verify OK" in res.stderr, res.stderr
            assert status_line(res, f.cert) == "good"
    resp = _revoke(server, issued.serial, "keyCompromise")
    assert resp.status_code == 200 and resp.json()["changed"] is True
    started = time.monotonic()
    res = openssl_ocsp(f, url, "-no_nonce", sha="sha256")
    assert "Response verify OK" in res.stderr, res.stderr
    assert status_line(res, f.cert) == "revoked"
    assert "Reason: keyCompromise" in res.stdout and "Revocation Time:" in res.stdout
    assert time.monotonic() - started < 5
    res = openssl_ocsp(f, url)  # with nonce, SHA-1
    assert status_line(res, f.cert) == "revoked" and "Response verify OK" in res.stderr


@BINDINGS
def test_iso15118_leaf_unknown_serial_and_foreign_issuer(server: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    issued = issue_secc(server.services)
    f = files_for(server.services, issued, server.tmp, "secc")
    url = f"{server.ocsp}/ocsp"
    res = openssl_ocsp(f, url, "-no_nonce")
    assert status_line(res, f.cert) == "good" and "Response verify OK" in res.stderr
    unknown = subprocess.run(["openssl", "ocsp", "-issuer", str(f.issuer), "-serial", "0x1234567890abcdef", "-url",
                              url, "-CAfile", str(f.root), "-verify_other", str(f.chain)],
                             capture_output=True, text=True, timeout=30, check=False)
    assert "0x1234567890abcdef: unknown" in unknown.stdout, unknown.stdout + unknown.stderr
    # an issuer we do not serve: a throwaway CA made with openssl itself
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "foreign.pem"), "-subj", "/CN=Foreign",
                    "-days", "2"], check=True, capture_output=True, timeout=30)
    foreign = subprocess.run(["openssl", "ocsp", "-issuer", str(tmp_path / "foreign.pem"), "-serial", "0x10", "-url",
                              url, "-CAfile", str(f.root)], capture_output=True, text=True, timeout=30, check=False)
    assert "unauthorized (6)" in foreign.stdout + foreign.stderr


@BINDINGS
def test_several_certids_in_one_request(server: Server) -> None:
    a = issue_station(server.services, "CS0001")
    b = issue_station(server.services, "CS0002")
    fa = files_for(server.services, a, server.tmp, "a")
    fb = files_for(server.services, b, server.tmp, "b")
    assert _revoke(server, b.serial, "superseded").status_code == 200
    res = openssl_ocsp(fa, f"{server.ocsp}/ocsp", certs=[fa.cert, fb.cert])
    assert "Response verify OK" in res.stderr, res.stderr
    assert status_line(res, fa.cert) == "good"
    assert status_line(res, fb.cert) == "revoked" and "Reason: superseded" in res.stdout


@BINDINGS
def test_get_with_cache_headers_and_sha384(server: Server) -> None:
    issued = issue_station(server.services)
    f = files_for(server.services, issued, server.tmp, "get")
    for sha in ("sha1", "sha256", "sha384", "sha512"):
        req = server.tmp / f"req-{sha}.der"
        made = openssl_ocsp(f, None, "-no_nonce", "-reqout", str(req), sha=sha)
        assert req.exists(), made.stderr
        b64 = base64.b64encode(req.read_bytes()).decode()
        resp = httpx.get(f"{server.ocsp}/ocsp/{quote(b64, safe='')}", timeout=10)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/ocsp-response"
        cc = resp.headers["cache-control"]
        assert "public" in cc and "no-transform" in cc and "must-revalidate" in cc and "max-age=" in cc
        parsed = ocsp.load_der_ocsp_response(resp.content)
        assert resp.headers["expires"] and resp.headers["last-modified"] and resp.headers["etag"]
        assert parsed.next_update_utc is not None
        # RFC 5019 §6.2: Expires = nextUpdate, Last-Modified = producedAt (HTTP dates, whole seconds)
        assert parsedate_to_datetime(resp.headers["expires"]) == parsed.next_update_utc
        assert parsedate_to_datetime(resp.headers["last-modified"]) == parsed.produced_at_utc
        assert resp.headers["etag"].strip('"') == hashlib.sha1(resp.content).hexdigest()
        again = httpx.get(f"{server.ocsp}/ocsp/{quote(b64, safe='')}", timeout=10,
                          headers={"if-none-match": resp.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert int(cc.split("max-age=")[1].split(",")[0]) <= (parsed.next_update_utc - parsed.this_update_utc).total_seconds()
        (server.tmp / f"resp-{sha}.der").write_bytes(resp.content)
        res = openssl_ocsp(f, None, "-no_nonce", sha=sha, respin=server.tmp / f"resp-{sha}.der")
        assert "Response verify OK" in res.stderr, res.stderr
        assert status_line(res, f.cert) == "good"
        for _ in range(3):  # the background refresher may re-sign in between (new ETag): then ask again
            etag = httpx.get(f"{server.ocsp}/ocsp/{quote(b64, safe='')}").headers["etag"]
            again = httpx.get(f"{server.ocsp}/ocsp/{quote(b64, safe='')}", headers={"If-None-Match": etag})
            if again.status_code == 304:
                break
        assert again.status_code == 304 and again.content == b""


@BINDINGS
def test_hostile_input_never_500_and_service_keeps_serving(server: Server) -> None:
    issued = issue_station(server.services)
    f = files_for(server.services, issued, server.tmp, "h")
    req = server.tmp / "req.der"
    openssl_ocsp(f, None, "-no_nonce", "-reqout", str(req))
    good = req.read_bytes()
    url = f"{server.ocsp}/ocsp"
    ctype = {"Content-Type": "application/ocsp-request"}
    with httpx.Client(timeout=10) as c:
        for body in (b"", b"\x30", good[:-3], good[:20], b"\x00" * 100, b"garbage" * 50, good + b"\x00",
                     b"\x30\x84\xff\xff\xff\xff", bytes(range(256))):
            r = c.post(url, content=body, headers=ctype)
            assert r.status_code == 200, (body[:10], r.status_code)
            assert ocsp.load_der_ocsp_response(r.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        assert c.post(url, content=good, headers={"Content-Type": "text/plain"}).status_code == 415
        assert c.post(url, content=b"\x30" * (64 * 1024 + 1), headers=ctype).status_code == 413
        assert c.put(url, content=good, headers=ctype).status_code == 405
        for junk in ("%%%", "!!notbase64!!", "A", quote(base64.b64encode(b"garbage").decode(), safe=""), ""):
            r = c.get(f"{url}/{junk}")
            assert r.status_code in (200, 400, 404), (junk, r.status_code)
            if r.status_code == 200:
                status = ocsp.load_der_ocsp_response(r.content).response_status
                assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        r = c.get(url)
        assert r.status_code == 200
        r = c.post(url, content=good, headers=ctype)
        assert ocsp.load_der_ocsp_response(r.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    res = openssl_ocsp(f, url)
    assert status_line(res, f.cert) == "good"


def test_crls_verify_with_openssl_and_list_revoked(server: Server) -> None:
    station = issue_station(server.services)
    secc = issue_secc(server.services)
    held = issue_station(server.services, "CS0009")
    assert _revoke(server, station.serial, "keyCompromise").status_code == 200
    assert _revoke(server, secc.serial, "cessationOfOperation").status_code == 200
    assert _revoke(server, held.serial, "certificateHold").status_code == 200
    a = server.services.authority
    bundle = server.tmp / "cas.pem"
    bundle.write_bytes(b"".join(files_for(server.services, station, server.tmp, "x").chain.read_bytes()
                                for _ in range(1)) + b"".join(
        a.ca_certificate(ca).public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                                     fromlist=["Encoding"]).Encoding.PEM) for ca in a.cas()))
    listed: dict[str, str] = {}
    for ca in a.cas():
        for ext in ("crl", "pem"):
            r = httpx.get(f"{server.url}/crl/{ca.name}.{ext}", timeout=10)
            assert r.status_code == 200, (ca.name, r.status_code)
            assert r.headers["expires"] and "max-age=" in r.headers["cache-control"]
            path = server.tmp / f"{ca.name}.{ext}"
            path.write_bytes(r.content)
            res = subprocess.run(["openssl", "crl", "-inform", "DER" if ext == "crl" else "PEM", "-in", str(path),
                                  "-CAfile", str(bundle), "-verify", "-noout", "-text"],
                                 capture_output=True, text=True, timeout=30, check=False)
            assert "verify OK" in res.stderr + res.stdout, (ca.name, res.stderr)
            listed[ca.name] = res.stdout
    assert station.serial.upper() in listed["csms-sub"].replace(":", "").upper()
    assert held.serial.upper() in listed["csms-sub"].replace(":", "").upper()
    assert "Certificate Hold" in listed["csms-sub"] and "Key Compromise" in listed["csms-sub"]
    assert secc.serial.upper() in listed["cpo-sub2"].replace(":", "").upper()
    # releasing the hold removes it from the next CRL, with a higher CRL number
    assert _revoke(server, held.serial, "removeFromCRL").json()["certificate"]["status"] == "valid"
    after = httpx.get(f"{server.url}/crl/csms-sub.pem").content
    (server.tmp / "after.pem").write_bytes(after)
    text = subprocess.run(["openssl", "crl", "-in", str(server.tmp / "after.pem"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert held.serial.upper() not in text.replace(":", "").upper()
    assert station.serial.upper() in text.replace(":", "").upper()
    assert httpx.get(f"{server.url}/crl/nope.crl").status_code == 404
    # the CRL distribution point the certificate carries is served here, and is its issuer's CRL
    from urllib.parse import urlsplit

    cdp = station.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = next(n.value for dp in cdp for n in (dp.full_name or []) if isinstance(n, x509.UniformResourceIdentifier))
    served = httpx.get(f"{server.url}{urlsplit(url).path}", timeout=10)
    assert served.status_code == 200, url
    assert x509.load_der_x509_crl(served.content).issuer == station.certificate.issuer
