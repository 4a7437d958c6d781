"""Sub-CA renewal with overlap: old leaves stay valid, new issuance moves to the successor."""

from __future__ import annotations

import pytest

from pki.authority import Authority
from pki.errors import Conflict, PolicyViolation
from pki.lifecycle.renewal import renew_ca, retire_ca
from pki.lifecycle.stations import default_revoker
from pki.profiles import CertKind, Generation
from pki.store import repo
from tests.helpers import make_csr, openssl_verify, p256


def _station(pki: Authority, sid: str):  # type: ignore[no-untyped-def]
    return pki.issue_from_csr(make_csr(p256(), CN=sid, O="Test CPO", C="DE"), CertKind.STATION_CLIENT, owner=sid)


def test_renew_with_overlap_and_retire(pki: Authority) -> None:
    old_leaf = _station(pki, "CS1")
    created = renew_ca(pki, "csms-sub", actor="admin")
    assert [c.name for c in created] == ["csms-sub-g2"]
    new_sub = pki.ca_certificate(created[0])
    assert "G2" in new_sub.subject.rfc4514_string()
    new_leaf = _station(pki, "CS2")
    assert pki.ca_by_id(new_leaf.record.ca_id).name == "csms-sub-g2"  # issuer_for: newest active of the kind
    root = pki.ca_certificate(pki.ca("csms-root"))
    openssl_verify(old_leaf.certificate, list(old_leaf.chain), root)  # overlap: the old chain still verifies
    openssl_verify(new_leaf.certificate, list(new_leaf.chain), root)
    assert new_sub.public_key() != pki.ca_certificate(pki.ca("csms-sub")).public_key()
    with pytest.raises(Conflict, match="already renewed"):
        renew_ca(pki, "csms-sub")
    with pytest.raises(Conflict, match="1 valid certificate"):
        retire_ca(pki, "csms-sub")
    default_revoker(pki.db, pki.clock)(old_leaf.record, "superseded", "admin")
    assert retire_ca(pki, "csms-sub").status == "retired"
    with pytest.raises(Conflict, match="newest"):
        retire_ca(pki, "csms-sub-g2")
    audit = [e.action for e in repo.list_audit(pki.db, limit=1000)]
    assert "ca.renew" in audit and "ca.retire" in audit


def test_cascade_renews_the_subtree_under_the_successor(pki: Authority) -> None:
    created = renew_ca(pki, "cpo-sub1", cascade=True, actor="admin")
    assert [c.name for c in created] == ["cpo-sub1-g2", "cpo-sub2-g2"]
    assert pki.ca_by_id(created[1].parent_id or 0).name == "cpo-sub1-g2"
    secc = pki.issue_from_csr(make_csr(p256(), CN="DE*ICE*E0001", O="Test CPO", C="DE", DC="CPO"),
                              CertKind.SECC_LEAF, generation=Generation.ISO15118_2)
    assert pki.ca_by_id(secc.record.ca_id).name == "cpo-sub2-g2"
    openssl_verify(secc.certificate, list(secc.chain), pki.ca_certificate(pki.ca("v2g-root")))
    # renewing only sub2 later parents it under the newest sub1
    again = renew_ca(pki, "cpo-sub2-g2")
    assert again[0].name == "cpo-sub2-g3" and pki.ca_by_id(again[0].parent_id or 0).name == "cpo-sub1-g2"


def test_roots_are_rotated_not_renewed(pki: Authority) -> None:
    with pytest.raises(PolicyViolation, match="root rotate"):
        renew_ca(pki, "v2g-root")
