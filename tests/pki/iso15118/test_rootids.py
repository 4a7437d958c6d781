"""ListOfRootCertificateIDs matching: serial plus a normalised issuer name, whatever spelling the EV uses."""

from __future__ import annotations

import pytest

from pki.iso15118.rootids import RootId, matches, normalise_name, select_roots
from tests.pki.iso15118.chains import make

ROOT = make("V2G Root CA", None, ca=True, dc="V2G").cert


@pytest.mark.parametrize("spelling", [
    repr(ROOT.issuer),  # Josev: <Name(DC=V2G,CN=V2G Root CA)>
    ROOT.issuer.rfc4514_string(),
    "CN=V2G Root CA, DC=V2G",
    "cn=v2g  root ca;dc=v2g",
    "commonName=V2G Root CA,domainComponent=V2G",
    "2.5.4.3=V2G Root CA,0.9.2342.19200300.100.1.25=V2G",
])
def test_spellings_match(spelling: str) -> None:
    assert matches(RootId(spelling, ROOT.serial_number), ROOT)


def test_serial_and_name_must_both_agree() -> None:
    assert not matches(RootId(repr(ROOT.issuer), ROOT.serial_number + 1), ROOT)
    assert not matches(RootId("CN=Other Root,DC=V2G", ROOT.serial_number), ROOT)
    assert not matches(RootId("CN=V2G Root CA", ROOT.serial_number), ROOT)  # missing DC
    assert not matches(RootId("garbage without equals", ROOT.serial_number), ROOT)
    assert normalise_name("") is None


def test_select_keeps_the_evs_order() -> None:
    other = make("MO Root", None, ca=True, dc="MO").cert
    ids = [RootId(repr(other.issuer), other.serial_number), RootId(repr(ROOT.issuer), ROOT.serial_number)]
    assert select_roots(ids, [ROOT, other]) == [other, ROOT]
    assert select_roots(ids[:1], [ROOT]) == []
