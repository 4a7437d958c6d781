"""No private key material in any response, log line, audit entry, database row or exception text.

The CA keys of a running service are collected first (scalar as raw bytes, hex and base64; the unencrypted PKCS#8
DER as base64), then the API is exercised broadly — every GET route, issuance, refusals, auth failures, key-store
errors — and every byte that left the process (responses, caplog) or was stored (database dump, audit export) is
searched for them and for PEM private-key markers."""

from __future__ import annotations

import base64
import logging
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlmodel import SQLModel

from api.context import Services
from api.routes_util import iter_routes
from pki.errors import PkiError
from pki.keys.file import FileKeyStore
from tests.api.conftest import token_for
from tests.helpers import make_csr, p256, rsa_key

MARKER = re.compile(r"PRIVATE KEY-----")


def _needles(services: Services) -> list[bytes]:
    needles: list[bytes] = []
    for ca in services.authority.cas():
        key = services.keys.signer(ca.key_uri)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        size = (key.curve.key_size + 7) // 8
        d = key.private_numbers().private_value.to_bytes(size, "big")
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        needles += [d, d.hex().encode(), d.hex().upper().encode(), base64.b64encode(d).rstrip(b"="),
                    base64.b64encode(der)[-40:]]
    return needles


def test_no_private_key_material_leaves_the_service(client: TestClient, services: Services, admin_token: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    needles = _needles(services)
    assert len(needles) >= 5 * 10
    seen: list[bytes] = []
    admin = {"Authorization": f"Bearer {admin_token}"}
    operator = {"Authorization": f"Bearer {token_for(services, 'operator')}"}

    for path, methods, _route in iter_routes(client.app.routes):  # type: ignore[attr-defined]
        if "GET" in methods:
            url = path.replace("{cert_id}", "1").replace("{name}", "v2g-root").replace("{filename}", "v2g-root.pem")
            seen.append(client.get(url, headers=admin).content)
    for extra in ("/openapi.json", "/api/v1/audit/export", "/api/v1/certificates?limit=1000"):
        seen.append(client.get(extra, headers=admin).content)
    csr = make_csr(p256(), CN="CS900", O="Test CPO", C="DE").decode()
    for body in ({"kind": "station-client", "csr": csr}, {"kind": "station-client", "csr": "garbage"},
                 {"kind": "station-client", "csr": make_csr(rsa_key(), CN="CS901", O="Test CPO").decode()},
                 {"kind": "v2g-root", "csr": csr}, {"kind": "nope", "csr": csr}):
        seen.append(client.post("/api/v1/certificates", json=body, headers=operator).content)
    seen.append(client.get("/api/v1/cas", headers={"Authorization": "Bearer wrong"}).content)
    seen.append(client.post("/api/v1/audit/checkpoint", headers=admin).content)

    # key-store failures: the exception texts
    bad = FileKeyStore(services.settings.resolved_key_dir(), b"not the passphrase")
    for uri in [*[ca.key_uri for ca in services.authority.cas()][:2], "file:../../etc/passwd"]:
        with pytest.raises(PkiError) as info:
            bad.signer(uri)
        seen += [str(info.value).encode(), repr(info.value).encode()]

    export = "\n".join(str(e) for e in services.audit_log().entries()).encode()
    rows: list[str] = []
    with services.db.engine.connect() as conn:  # every row of every table, on SQLite or PostgreSQL
        for table in SQLModel.metadata.sorted_tables:
            rows += [repr(tuple(r)) for r in conn.execute(table.select())]
    dump = "\n".join(rows).encode()
    assert len(rows) > 20
    seen += [export, dump, caplog.text.encode()]

    blob = b"\n".join(seen)
    flat = blob.replace(b"\n", b"").replace(b"\\n", b"")
    assert not MARKER.search(blob.decode("utf-8", "replace"))
    leaked = [n[:8] for n in needles if n in blob or n in flat]
    assert leaked == []
    assert len(blob) > 10_000  # the exercise really produced output
