"""The M05 link certificate, judged by openssl: what an AdditionalRootCertificateCheck station verifies."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from pki.authority import Authority
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.jobs import JobEngine
from pki.lifecycle.rotation import RootRotation, RotationOptions
from pki.lifecycle.simulator import SimStation, SimulatedFleet
from pki.lifecycle.stations import StationLifecycle
from pki.profiles import CertKind
from pki.store import repo
from pki.store.models import ItemState, JobStatus
from tests.helpers import make_csr, p256, pem


def _openssl(tmp: Path, *args: str, **files: list[x509.Certificate]) -> subprocess.CompletedProcess[str]:
    paths = {}
    for name, certs in files.items():
        paths[name] = tmp / f"{name}.pem"
        paths[name].write_bytes(b"".join(pem(c) for c in certs))
    argv = ["openssl", "verify", "-x509_strict", *[str(paths.get(a, a)) if a in paths else a for a in args]]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.fixture
def rotated(pki: Authority) -> tuple[Authority, dict[str, x509.Certificate]]:
    lifecycle = StationLifecycle(pki.db, pki.clock)
    rotation = RootRotation(pki, None, lifecycle)
    engine = JobEngine(pki.db, clock=pki.clock, handlers=[rotation])
    job = rotation.start(engine, RotationOptions(Hierarchy.CSMS), actor="admin")
    assert job.id is not None
    job = engine.run(job.id)  # no gateway: prepares CAs, then waits
    assert job.status == JobStatus.WAITING and "gateway" in (job.message or "")
    link_id = engine.state(job)["link_certificate_id"]
    rec = repo.get_certificate(pki.db, link_id)
    assert rec is not None and rec.der is not None
    server = pki.issue_from_csr(make_csr(p256(), CN="csms.example.com", O="Test CPO", C="DE"), CertKind.CSMS_SERVER)
    return pki, {
        "old": pki.ca_certificate(pki.ca("csms-root")),
        "new": pki.ca_certificate(pki.ca("csms-root-g2")),
        "sub": pki.ca_certificate(pki.ca("csms-sub-g2")),
        "link": x509.load_der_x509_certificate(rec.der),
        "server": server.certificate,
    }


def test_link_certificate_structure(rotated) -> None:  # type: ignore[no-untyped-def]
    _, c = rotated
    link, old, new = c["link"], c["old"], c["new"]
    assert link.subject == new.subject and link.issuer == old.subject
    assert link.public_key() == new.public_key()
    ski = link.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = link.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert ski == new.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == old.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert link.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert link.not_valid_after_utc <= old.not_valid_after_utc
    assert c["server"].issuer == c["sub"].subject


def test_openssl_accepts_link_as_new_root_signed_by_old(rotated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, c = rotated
    # the station's M05 check: the certificate it is asked to install verifies with the root it has
    ok = _openssl(tmp_path, "-CAfile", "old", "link", old=[c["old"]], link=[c["link"]])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # a self-signed new root does NOT verify with the old root: that is what an ARCC station rejects
    bad = _openssl(tmp_path, "-CAfile", "old", "new", old=[c["old"]], new=[c["new"]])
    assert bad.returncode != 0
    # during the transition (old root + link installed) the new server chain builds up to the old root
    both = _openssl(tmp_path, "-CAfile", "store", "-untrusted", "sub", "server",
                    store=[c["old"], c["link"]], sub=[c["sub"]], server=[c["server"]])
    assert both.returncode == 0, both.stdout + both.stderr
    # after the old root is deleted the link certificate is the anchor (partial chain)
    alone = _openssl(tmp_path, "-partial_chain", "-CAfile", "link", "-untrusted", "sub", "server",
                     link=[c["link"]], sub=[c["sub"]], server=[c["server"]])
    assert alone.returncode == 0, alone.stdout + alone.stderr
    # and the self-signed new root verifies the same chain for stations without the check
    plain = _openssl(tmp_path, "-CAfile", "new", "-untrusted", "sub", "server",
                     new=[c["new"]], sub=[c["sub"]], server=[c["server"]])
    assert plain.returncode == 0, plain.stdout + plain.stderr


def test_arcc_station_rejects_self_signed_root_without_link(pki: Authority) -> None:
    fleet = SimulatedFleet()
    old = pki.ca_certificate(pki.ca("csms-root"))
    for sid, arcc in (("ARCC1", True), ("PLAIN1", False)):
        fleet.add_station(SimStation(sid, arcc=arcc, hierarchies=["csms"]))
        fleet.install_root_directly(sid, "CSMSRootCertificate", old)
    lifecycle = StationLifecycle(pki.db, pki.clock)
    rotation = RootRotation(pki, fleet, lifecycle)
    engine = JobEngine(pki.db, clock=pki.clock, handlers=[rotation])
    job = rotation.start(engine, RotationOptions(Hierarchy.CSMS, link_certificate=False, rate=0), actor="admin")
    assert job.id is not None
    engine.run(job.id)
    report = {i.station_id: i for i in engine.report(job.id).items}
    assert report["ARCC1"].state == ItemState.FAILED and "NotSignedByInstalledRoot" in (report["ARCC1"].reason or "")
    assert report["PLAIN1"].state == ItemState.INSTALLED
    assert engine.get(job.id).status == JobStatus.WAITING  # failed station blocks retirement
