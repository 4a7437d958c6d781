"""Upstream adapters against a fake OPCP server over real HTTP: OAuth2 client credentials, retries, CCP, EST."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pki.errors import InvalidRequest
from pki.iso15118.upstream import (
    EstClient,
    HubjectCcpProvider,
    OAuth2ClientCredentials,
    OAuth2Config,
    ProviderRouter,
    RetryPolicy,
    UpstreamError,
)
from tests.helpers import make_csr
from tests.pki.iso15118.fake_pool import FakePool

NS2 = "urn:iso:15118:2:2013:MsgDef"


@pytest.fixture(scope="module")
def pool() -> Iterator[FakePool]:
    with FakePool() as p:
        yield p


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


@pytest.fixture
def sleeps() -> list[float]:
    return []


def oauth(pool: FakePool, http: httpx.Client, secret: str = "s3cret") -> OAuth2ClientCredentials:  # noqa: S107
    return OAuth2ClientCredentials(OAuth2Config(f"{pool.url}/oauth/token", "cpo-client", secret,
                                                audience="https://eu.plugncharge-qa.hubject.com"), http)


def ccp(pool: FakePool, http: httpx.Client, sleeps: list[float], attempts: int = 3) -> HubjectCcpProvider:
    pool.state.fail_next.clear()
    return HubjectCcpProvider("hubject", pool.url, client=http, oauth=oauth(pool, http),
                              retry=RetryPolicy(attempts=attempts, backoff=0.1, sleep=sleeps.append))


def test_ccp_happy_path_with_cached_token(pool: FakePool, http: httpx.Client, sleeps: list[float]) -> None:
    pool.state.contracts["UkVR"] = "UkVT"
    provider = ccp(pool, http, sleeps)
    first = provider.get_signed_contract_data("UkVR", NS2)
    assert (first.exi_response_b64, first.emaid) == ("UkVT", "DEHUB000000001")
    provider.get_signed_contract_data("UkVR", NS2)
    assert provider.http.oauth is not None and provider.http.oauth.fetches == 1  # token reused
    method, path, headers, body = pool.state.requests[-1]
    assert (method, path) == ("POST", "/v1/ccp/signedContractData") and headers["alwaysreturnexi"] == "true"
    assert headers["authorization"].startswith("Bearer tok-") and b'"xsdMsgDefNamespace"' in body
    assert sleeps == []


def test_ccp_retries_transient_errors_with_backoff(pool: FakePool, http: httpx.Client, sleeps: list[float]) -> None:
    pool.state.contracts["UkVR"] = "UkVT"
    provider = ccp(pool, http, sleeps)
    pool.state.fail_next[:] = [503, 502]
    assert provider.get_signed_contract_data("UkVR", NS2).exi_response_b64 == "UkVT"
    assert sleeps == [0.1, 0.2]
    pool.state.fail_next[:] = [503, 503, 503]
    with pytest.raises(UpstreamError) as exc:
        provider.get_signed_contract_data("UkVR", NS2)
    assert exc.value.code == "UpstreamUnavailable"


def test_ccp_refreshes_a_rejected_token_once(pool: FakePool, http: httpx.Client, sleeps: list[float]) -> None:
    pool.state.contracts["UkVR"] = "UkVT"
    provider = ccp(pool, http, sleeps)
    provider.get_signed_contract_data("UkVR", NS2)
    pool.state.revoke_tokens = True  # the server forgets our token; the next token request re-enables
    assert provider.get_signed_contract_data("UkVR", NS2).exi_response_b64 == "UkVT"
    assert provider.http.oauth is not None and provider.http.oauth.fetches == 2


def test_ccp_negative_answers(pool: FakePool, http: httpx.Client, sleeps: list[float]) -> None:
    provider = ccp(pool, http, sleeps)
    with pytest.raises(UpstreamError) as exc:
        provider.get_signed_contract_data("VU5LTk9XTg==", NS2)
    assert exc.value.code == "FAILED_NoCertificateAvailable" and exc.value.exi_response == "TkVHQVRJVkU="
    plain = HubjectCcpProvider("hubject", pool.url, client=http, oauth=oauth(pool, http), always_return_exi=False,
                               retry=RetryPolicy(sleep=sleeps.append))
    with pytest.raises(UpstreamError) as exc:
        plain.get_signed_contract_data("VU5LTk9XTg==", NS2)
    assert "Contract or Vehicle not found." in exc.value.message and exc.value.exi_response is None
    with pytest.raises(UpstreamError) as exc:
        provider.get_signed_contract_data("UkVR", "urn:bogus")
    assert exc.value.code == "UpstreamRejected" and "EXI format is invalid!" in exc.value.message


def test_bad_client_secret_is_reported_without_the_secret(pool: FakePool, http: httpx.Client) -> None:
    provider = HubjectCcpProvider("hubject", pool.url, client=http, oauth=oauth(pool, http, secret="wrong-Secret-X"))
    with pytest.raises(UpstreamError) as exc:
        provider.get_signed_contract_data("UkVR", NS2)
    assert exc.value.code == "UpstreamAuthFailed" and "wrong-Secret-X" not in str(exc.value)
    assert "wrong-Secret-X" not in repr(provider.http.oauth.config if provider.http.oauth else "")


def test_unreachable_pool_is_retried_then_reported(http: httpx.Client, sleeps: list[float]) -> None:
    provider = HubjectCcpProvider("gone", "http://127.0.0.1:9", client=http, oauth=None,
                                  retry=RetryPolicy(attempts=2, backoff=0.05, sleep=sleeps.append))
    with pytest.raises(UpstreamError) as exc:
        provider.get_signed_contract_data("UkVR", NS2)
    assert exc.value.code == "UpstreamUnavailable" and sleeps == [0.05]


def test_est_simpleenroll_and_cacerts(pool: FakePool, http: httpx.Client, sleeps: list[float]) -> None:
    pool.state.fail_next.clear()
    est = EstClient(pool.url, client=http, oauth=oauth(pool, http), retry=RetryPolicy(sleep=sleeps.append))
    key = ec.generate_private_key(ec.SECP256R1())
    certs = est.simple_enroll("cpo", make_csr(key, CN="DE*ICE*E45B*78C", O="ICE", C="DE", DC="CPO"))
    assert certs[0].public_key() == key.public_key() and certs[1] == pool.app.state.ca_cert
    _, path, headers, _ = pool.state.requests[-1]
    assert path == "/.well-known/est/cpo/simpleenroll/ISO15118-2" and headers["content-type"] == "application/pkcs10"
    assert est.cacerts("cpo", algorithm="secp256r1") == [pool.app.state.ca_cert]
    assert pool.state.requests[-1][1] == "/cpo/cacerts/ISO15118-2/secp256r1/"
    with pytest.raises(InvalidRequest):
        est.simple_enroll("root", make_csr(key, CN="x"))
    with pytest.raises(InvalidRequest):
        est.simple_enroll("cpo", b"not a csr")


def test_router_from_config(monkeypatch: pytest.MonkeyPatch, pool: FakePool) -> None:
    monkeypatch.setenv("HUBJECT_SECRET", "s3cret")
    cfg = {"providers": {"hubject": {"type": "hubject-ccp", "base_url": pool.url, "token_url": f"{pool.url}/oauth/token",
                                     "client_id": "cpo-client", "client_secret_env": "HUBJECT_SECRET",
                                     "audience": "https://x"}},
           "stations": {"DE*HUB*": "hubject"}, "emsps": {"dehub": "hubject"}}
    router = ProviderRouter.from_config(cfg)
    assert router.route("CS-1") is None
    route = router.route("DE*HUB*E1")
    assert route is not None and route.name == "hubject"
    assert router.route("CS-1", "DEHUB") is route
    with pytest.raises(InvalidRequest):
        ProviderRouter.from_config({**cfg, "default": "nope"})
    monkeypatch.delenv("HUBJECT_SECRET")
    with pytest.raises(InvalidRequest):
        ProviderRouter.from_config(cfg)
    with pytest.raises(InvalidRequest):
        ProviderRouter.from_json("[1]")
