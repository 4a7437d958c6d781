"""Trust store: roots and anchored sub-CAs per role, own roots implicit, audited changes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from pki.authority import Authority
from pki.errors import Conflict, InvalidRequest, NotFound, PolicyViolation
from pki.iso15118.pathval import validate_path
from pki.iso15118.trust import TrustStore
from pki.store import repo
from tests.helpers import pem
from tests.pki.iso15118.chains import NOW, make, oem_chain


def test_add_bundle_in_any_order_and_validate_against_it(authority: Authority) -> None:
    store = TrustStore(authority)
    root, sub1, sub2, leaf = oem_chain("Foreign OEM")
    added = store.add(pem(sub2.cert) + pem(root.cert) + pem(sub1.cert), "oem", label="ACME", actor="test")
    assert [a.is_root for a in added] == [True, False, False]
    view = store.view(["oem"])
    assert root.cert in view.anchors and {sub1.cert, sub2.cert} <= set(view.intermediates)
    # an ISO 15118-2 request carries only the leaf: the stored sub-CAs complete the path
    assert validate_path(leaf.cert, view.intermediates, view.anchors, NOW).anchor == root.cert
    assert store.view(["mo"]).anchors == ()  # roles are kept apart
    actions = [e.action for e in repo.list_audit(authority.db)]
    assert actions.count("trust.add") == 3


def test_unanchored_sub_ca_and_leaves_are_refused(authority: Authority) -> None:
    store = TrustStore(authority)
    _, sub1, _, leaf = oem_chain()
    with pytest.raises(PolicyViolation):
        store.add(pem(sub1.cert), "oem")
    with pytest.raises(PolicyViolation):
        store.add(pem(leaf.cert), "oem")
    with pytest.raises(InvalidRequest):
        store.add(b"garbage", "oem")
    with pytest.raises(InvalidRequest):
        store.add(pem(sub1.cert), "cpo")
    assert store.list() == []


def test_duplicates_and_remove(authority: Authority) -> None:
    store = TrustStore(authority)
    root = make("MO Root X", None, ca=True, dc="MO")
    [row] = store.add(root.cert.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                                          fromlist=["Encoding"]).Encoding.DER), "mo")
    with pytest.raises(Conflict):
        store.add(pem(root.cert), "mo")
    with pytest.raises(InvalidRequest):
        store.remove("abc")
    with pytest.raises(NotFound):
        store.remove("99999")
    assert store.remove(row.fingerprint_sha256[:12]).id == row.id
    assert store.list() == []
    assert [e.action for e in repo.list_audit(authority.db)][-1] == "trust.remove"


def test_an_all_digit_fingerprint_prefix_is_not_taken_for_an_id(authority: Authority) -> None:
    """Regression: a 10-digit prefix such as '4711081512…' was looked up as a row id (NotFound), about one REST
    DELETE in a hundred."""
    store = TrustStore(authority)
    for i in range(2000):
        root = make(f"Digits Root {i}", None, ca=True, dc="MO")
        if root.cert.fingerprint(hashes.SHA256()).hex()[:10].isdigit():
            break
    else:
        pytest.fail("no certificate with an all-digit fingerprint prefix in 2000 tries")
    other = make("Other Root", None, ca=True, dc="MO")
    [other_row] = store.add(pem(other.cert), "mo")
    [row] = store.add(pem(root.cert), "mo")
    assert store.remove(row.fingerprint_sha256[:10]).id == row.id
    assert [r.id for r in store.list()] == [other_row.id]
    assert store.remove(str(other_row.id)).id == other_row.id  # short digit strings stay ids
    with pytest.raises(NotFound):
        store.remove("12345678")  # neither a prefix nor an id


def test_own_roots_are_trusted_implicitly(pki: Authority) -> None:
    store = TrustStore(pki)
    v2g = store.view(["v2g"])
    assert pki.ca_certificate(pki.ca("v2g-root")) in v2g.anchors
    assert pki.ca_certificate(pki.ca("cps-sub2")) in v2g.intermediates
    oem = store.view(["oem"])
    assert [c.subject for c in oem.anchors] == [pki.ca_certificate(pki.ca("oem-root")).subject]


@pytest.mark.parametrize("ident", ["¹", "٣", "¹²³⁴⁵⁶⁷⁸⁹", "١٢٣٤٥٦٧٨٩"])
def test_non_ascii_digits_are_neither_an_id_nor_a_prefix(authority: Authority, ident: str) -> None:
    """Regression (found by the REST fuzzer): str.isdigit() is true for '¹' and Arabic-Indic digits, which int()
    refuses — DELETE /api/v1/trust/%C2%B9 was a 500. They are now an invalid or unknown identifier."""
    with pytest.raises((InvalidRequest, NotFound)):
        TrustStore(authority).remove(ident)
