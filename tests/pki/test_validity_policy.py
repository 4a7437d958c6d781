"""Deployment validity limits (PNC_VALIDITY_DAYS): they tighten a profile's limits, never loosen them."""

from __future__ import annotations

import datetime as dt

import pytest

from pki.authority import Authority
from pki.errors import InvalidRequest, PolicyViolation
from pki.profiles import CertKind, Generation, all_profiles, get_profile
from pki.profiles.validity import parse_validity_policy
from tests.conftest import make_hierarchies
from tests.helpers import make_csr, p256

SECC = {"CN": "DE*PNC*E12345*1", "O": "Test CPO", "C": "DE", "DC": "CPO"}


def _lifetime(issued: object) -> dt.timedelta:
    cert = issued.certificate  # type: ignore[attr-defined]
    return cert.not_valid_after_utc - cert.not_valid_before_utc  # type: ignore[no-any-return]


def test_parse_and_limits() -> None:
    policy = parse_validity_policy(" secc-leaf=60:90 , contract-leaf=365,", all_profiles())
    secc = get_profile(CertKind.SECC_LEAF, Generation.ISO15118_2)
    contract = get_profile(CertKind.CONTRACT_LEAF, Generation.ISO15118_20)
    station = get_profile(CertKind.STATION_CLIENT, Generation.OCPP)
    assert policy.limits(secc) == (60, 90)
    assert policy.limits(contract) == (365, contract.max_validity_days)
    assert policy.limits(station) == (station.default_validity_days, station.max_validity_days)
    assert parse_validity_policy("", all_profiles()).overrides == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("secc-leaf", "expected kind=default\\[:max\\]"),
        ("nope=5", "unknown certificate kind 'nope'"),
        ("secc-leaf=sixty", "whole numbers"),
        ("secc-leaf=0", "must be positive"),
        ("secc-leaf=30:-1", "must be positive"),
        ("secc-leaf=60:9999", "exceeds the secc-leaf profile's hard limit of 730 days"),
        ("secc-leaf=100:90", "default 100 days exceeds the maximum 90 days"),
        ("v2g-root=20000", "default 20000 days exceeds the maximum 14610 days"),
        ("secc-leaf=60,secc-leaf=90", "set twice"),
    ],
)
def test_bad_configuration_is_one_precise_error(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_validity_policy(text, all_profiles())


def test_authority_applies_the_deployment_limits(authority: Authority) -> None:
    authority.validity = parse_validity_policy("secc-leaf=60:90,cpo-sub2=400", all_profiles())
    make_hierarchies(authority)
    sub2 = authority.ca_certificate(authority.ca("cpo-sub2"))
    assert dt.timedelta(days=400) < sub2.not_valid_after_utc - sub2.not_valid_before_utc <= dt.timedelta(
        days=400, minutes=6)
    default = authority.issue_from_csr(make_csr(p256(), **SECC), CertKind.SECC_LEAF)
    assert dt.timedelta(days=60) < _lifetime(default) <= dt.timedelta(days=60, minutes=6)
    longest = authority.issue_from_csr(make_csr(p256(), **SECC), CertKind.SECC_LEAF, validity_days=90)
    assert _lifetime(longest) <= dt.timedelta(days=90, minutes=6)
    with pytest.raises(PolicyViolation, match=r"validity 91 days is outside 1\.\.90 for secc-leaf"):
        authority.issue_from_csr(make_csr(p256(), **SECC), CertKind.SECC_LEAF, validity_days=91)
    # kinds without an override keep the profile's limits
    station = authority.issue_from_csr(make_csr(p256(), CN="SN-1", O="Test CPO"), CertKind.STATION_CLIENT)
    assert dt.timedelta(days=365) < _lifetime(station) <= dt.timedelta(days=365, minutes=6)


def test_services_read_pnc_validity_days(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.context import build_services
    from api.settings import Settings

    monkeypatch.setenv("PNC_VALIDITY_DAYS", "secc-leaf=30:45")
    settings = Settings(data_dir=tmp_path, key_passphrase="x" * 16)  # type: ignore[arg-type]
    services = build_services(settings)
    try:
        profile = get_profile(CertKind.SECC_LEAF, Generation.ISO15118_2)
        assert services.authority.validity.limits(profile) == (30, 45)
    finally:
        services.close()
    monkeypatch.setenv("PNC_VALIDITY_DAYS", "secc-leaf=30:4000")
    with pytest.raises(InvalidRequest, match="hard limit of 730 days"):
        build_services(Settings(data_dir=tmp_path, key_passphrase="x" * 16))  # type: ignore[arg-type]
