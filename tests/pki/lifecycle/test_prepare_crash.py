"""Failures inside the prepare phase: resuming never creates a CA or link certificate twice."""

from __future__ import annotations

from typing import Any

import pytest

import pki.authority as authority_module
from pki.authority import Authority
from pki.errors import PkiError
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.jobs import JobEngine
from pki.lifecycle.rotation import RootRotation, RotationOptions
from pki.lifecycle.stations import StationLifecycle
from pki.store import repo


def _engine(pki: Authority) -> tuple[JobEngine, RootRotation]:
    rotation = RootRotation(pki, None, StationLifecycle(pki.db, pki.clock))
    return JobEngine(pki.db, clock=pki.clock, handlers=[rotation]), rotation


def test_exception_between_root_and_sub_ca_then_resume(pki: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, rotation = _engine(pki)
    job = rotation.start(engine, RotationOptions(Hierarchy.V2G), actor="admin")
    assert job.id is not None
    real = Authority.create_sub_ca
    calls = {"n": 0}

    def flaky(self: Authority, *a: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:  # cpo-sub1-g2, cps-sub1-g2 created; the process "dies" on the third
            raise RuntimeError("simulated crash")
        return real(self, *a, **kw)

    monkeypatch.setattr(Authority, "create_sub_ca", flaky)
    with pytest.raises(RuntimeError):
        engine.run(job.id)
    monkeypatch.setattr(Authority, "create_sub_ca", real)
    job = engine.run(job.id)
    assert job.phase == "rollout"
    names = [ca.name for ca in pki.cas()]
    for name in ("v2g-root-g2", "cpo-sub1-g2", "cpo-sub2-g2", "cps-sub1-g2", "cps-sub2-g2"):
        assert names.count(name) == 1
    assert not any("abandoned" in n for n in names)


def test_signing_failure_on_new_root_is_completed_on_resume(pki: Authority,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    engine, rotation = _engine(pki)
    job = rotation.start(engine, RotationOptions(Hierarchy.CSMS), actor="admin")
    assert job.id is not None
    real = authority_module.sign_certificate

    def broken(template: Any, signer: Any) -> Any:
        raise OSError("HSM went away")

    monkeypatch.setattr(authority_module, "sign_certificate", broken)
    with pytest.raises(PkiError):
        engine.run(job.id)
    half = pki.ca("csms-root-g2")
    assert half.certificate_id is None  # key generated, CA row written, certificate never signed
    monkeypatch.setattr(authority_module, "sign_certificate", real)
    job = engine.run(job.id)
    assert job.phase == "rollout"
    new = pki.ca("csms-root-g2")
    assert new.certificate_id is not None and new.id == half.id  # finished with the key it already had
    assert new.key_uri == half.key_uri
    assert "ca.complete" in [e.action for e in repo.list_audit(pki.db, limit=1000)]
    links = repo.list_certificates(pki.db, owner="link:csms-root-g2", limit=10)
    assert len(links) == 1 and links[0].status == "valid"
    job = engine.run(job.id)  # running again changes nothing
    assert len(repo.list_certificates(pki.db, owner="link:csms-root-g2", limit=10)) == 1


def test_half_created_sub_ca_never_takes_over_issuance(pki: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    from pki.profiles import CertKind
    from tests.helpers import make_csr, p256

    engine, rotation = _engine(pki)
    job = rotation.start(engine, RotationOptions(Hierarchy.CSMS, link_certificate=False), actor="admin")
    assert job.id is not None
    calls = {"n": 0}
    real = authority_module.sign_certificate

    def second_fails(template: Any, signer: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the root is signed, the sub-CA is not
            raise OSError("HSM went away")
        return real(template, signer)

    monkeypatch.setattr(authority_module, "sign_certificate", second_fails)
    with pytest.raises(PkiError):
        engine.run(job.id)
    monkeypatch.setattr(authority_module, "sign_certificate", real)
    assert pki.ca("csms-sub-g2").certificate_id is None
    leaf = pki.issue_from_csr(make_csr(p256(), CN="CS1", O="Test CPO", C="DE"), CertKind.STATION_CLIENT)
    assert pki.ca_by_id(leaf.record.ca_id).name == "csms-sub"  # the old sub-CA keeps issuing meanwhile
    engine.run(job.id)
    leaf = pki.issue_from_csr(make_csr(p256(), CN="CS2", O="Test CPO", C="DE"), CertKind.STATION_CLIENT)
    assert pki.ca_by_id(leaf.record.ca_id).name == "csms-sub-g2"
