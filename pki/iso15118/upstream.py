"""Upstream contract-certificate pools and EST, behind a provider seam.

* :class:`HubjectCcpProvider` — Hubject OPCP / CharIN OPNC Contract Certificate Pool, ``POST
  /v1/ccp/signedContractData`` with ``{certificateInstallationReq, xsdMsgDefNamespace}``; the answer's
  ``CCPResponse.emaidContent[0].messageDef.certificateInstallationRes`` (base64 EXI) goes back to the station
  unchanged (hubject/opcp ``OPCP-1.0.0/reference/ccp.v1.json``). This path needs no EXI codec: the pool decodes,
  checks and signs.
* :class:`EstClient` — OPCP EST: ``POST /.well-known/est/{ca}/simpleenroll/{iso-version}`` (body: base64 DER
  PKCS#10, answer: base64 PKCS#7 certs-only) and ``GET /{ca}/cacerts/{iso-version}/{algorithm}/`` as the OpenAPI
  description writes it (``est.v1.json``; the path template is configurable because RFC 7030 puts ``cacerts``
  under ``/.well-known/est``).
* :class:`OAuth2ClientCredentials` — client-credentials tokens (``accessToken.v1.json``: JSON body with client_id,
  client_secret, audience, grant_type; ``form`` style for standard RFC 6749 servers), cached until shortly before
  ``expires_in`` and refreshed once on a 401.
* :class:`RetryPolicy` — bounded retries with exponential back-off on transport errors and 429/502/503/504; the
  sleep function is injected so tests never sleep.
* :class:`ProviderRouter` — which provider serves a station or an eMSP (``None`` = the local MO/CPS), and which
  EST CA (:class:`EstProvider`) signs a station's SECC certificates (``None`` = our CPO Sub-CA 2); the OCPP
  SignCertificate handler (api/ocpp/core.py) asks it for V2GCertificate / V2G20Certificate requests.

Secrets (client secrets, tokens) never appear in exceptions or logs.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from pki.clock import Clock, SystemClock
from pki.errors import InvalidRequest, PkiError

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class UpstreamError(PkiError):
    """The upstream service failed or refused; ``code`` is a short reason, the message says which service."""

    status = 502

    def __init__(self, message: str, *, code: str = "UpstreamError", exi_response: str | None = None) -> None:
        super().__init__(message, code=code)
        self.exi_response = exi_response  # an ISO-compliant negative response the pool sent, if any


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * (2 ** attempt)))


@dataclass(frozen=True)
class OAuth2Config:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    audience: str | None = None
    scope: str | None = None
    style: str = "json"  # "json" (Hubject/Auth0, accessToken.v1.json) or "form" (RFC 6749 §4.4)


class OAuth2ClientCredentials:
    def __init__(self, config: OAuth2Config, client: httpx.Client, *, clock: Clock | None = None,
                 margin: float = 60.0) -> None:
        self.config = config
        self.client = client
        self.clock: Clock = clock or SystemClock()
        self.margin = margin
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def token(self) -> str:
        with self._lock:
            now = self.clock.now().timestamp()
            if self._token is not None and now < self._expires:
                return self._token
            c = self.config
            body: dict[str, str] = {"grant_type": "client_credentials", "client_id": c.client_id,
                                    "client_secret": c.client_secret}
            if c.audience:
                body["audience"] = c.audience
            if c.scope:
                body["scope"] = c.scope
            try:
                resp = (self.client.post(c.token_url, json=body) if c.style == "json"
                        else self.client.post(c.token_url, data=body))
            except httpx.HTTPError as exc:
                raise UpstreamError(f"token endpoint unreachable ({type(exc).__name__})",
                                    code="UpstreamUnavailable") from None
            if resp.status_code != 200:
                raise UpstreamError(f"token endpoint refused the client credentials (HTTP {resp.status_code})",
                                    code="UpstreamAuthFailed")
            try:
                data = resp.json()
                token = str(data["access_token"])
                lifetime = float(data.get("expires_in", 300))
            except (ValueError, KeyError, TypeError):
                raise UpstreamError("token endpoint answered without access_token", code="UpstreamAuthFailed") from None
            self.fetches += 1
            self._token = token
            self._expires = now + max(0.0, lifetime - self.margin)
            return token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


class _Http:
    """One request with auth, 401 refresh and bounded retries."""

    def __init__(self, base_url: str, client: httpx.Client, oauth: OAuth2ClientCredentials | None,
                 retry: RetryPolicy, service: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.oauth = oauth
        self.retry = retry
        self.service = service

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        refreshed = False
        attempt = 0
        while True:
            headers = dict(kwargs.pop("headers", {}) or {})
            if self.oauth is not None:
                headers["Authorization"] = f"Bearer {self.oauth.token()}"
            try:
                resp = self.client.request(method, self.base_url + path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 >= self.retry.attempts:
                    raise UpstreamError(f"{self.service} unreachable after {attempt + 1} attempt(s) "
                                        f"({type(exc).__name__})", code="UpstreamUnavailable") from None
                self.retry.sleep(self.retry.delay(attempt))
                attempt += 1
                kwargs["headers"] = headers
                continue
            if resp.status_code == 401 and self.oauth is not None and not refreshed:
                self.oauth.invalidate()
                refreshed = True
                kwargs["headers"] = headers
                continue
            if resp.status_code in RETRY_STATUSES and attempt + 1 < self.retry.attempts:
                self.retry.sleep(self.retry.delay(attempt))
                attempt += 1
                kwargs["headers"] = headers
                continue
            return resp


@dataclass(frozen=True)
class UpstreamAnswer:
    exi_response_b64: str
    emaid: str | None = None
    remaining: int | None = None


class ContractProvider(Protocol):
    name: str

    def get_signed_contract_data(self, exi_request_b64: str, namespace: str, *, station_id: str = "") -> UpstreamAnswer:
        ...


def _error_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        messages = data.get("errorMessages") if isinstance(data, dict) else None
        if messages:
            return "; ".join(str(m) for m in messages)[:300]
    except ValueError:
        pass
    return f"HTTP {resp.status_code}"


def _ccp_exi(resp: httpx.Response) -> tuple[str, str | None] | None:
    try:
        content = resp.json()["CCPResponse"]["emaidContent"]
        first = content[0]["messageDef"]
        exi = str(first.get("certificateInstallationRes") or "")
        emaid = first.get("emaid")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return (exi, str(emaid) if emaid else None) if exi else None


class HubjectCcpProvider:
    def __init__(self, name: str, base_url: str, *, client: httpx.Client, oauth: OAuth2ClientCredentials | None,
                 retry: RetryPolicy | None = None, always_return_exi: bool = True) -> None:
        self.name = name
        self.http = _Http(base_url, client, oauth, retry or RetryPolicy(), f"contract pool {name!r}")
        self.always_return_exi = always_return_exi

    def get_signed_contract_data(self, exi_request_b64: str, namespace: str, *, station_id: str = "") -> UpstreamAnswer:
        resp = self.http.request(
            "POST", "/v1/ccp/signedContractData",
            json={"certificateInstallationReq": exi_request_b64, "xsdMsgDefNamespace": namespace},
            headers={"alwaysReturnEXI": "true" if self.always_return_exi else "false"},
        )
        found = _ccp_exi(resp)
        if resp.status_code == 200:
            if found is None:
                raise UpstreamError(f"contract pool {self.name!r} answered without certificateInstallationRes",
                                    code="UpstreamBadAnswer")
            return UpstreamAnswer(found[0], found[1])
        negative = found[0] if found else None
        if resp.status_code == 404:
            raise UpstreamError(f"contract pool {self.name!r}: {_error_text(resp) if not found else 'no contract'}",
                                code="FAILED_NoCertificateAvailable", exi_response=negative)
        if resp.status_code in (401, 403):
            raise UpstreamError(f"contract pool {self.name!r} refused our credentials (HTTP {resp.status_code})",
                                code="UpstreamAuthFailed")
        if resp.status_code == 400:
            raise UpstreamError(f"contract pool {self.name!r} rejected the request: {_error_text(resp)}",
                                code="UpstreamRejected", exi_response=negative)
        raise UpstreamError(f"contract pool {self.name!r} failed: {_error_text(resp)}", code="UpstreamUnavailable")


class EstClient:
    def __init__(self, base_url: str, *, client: httpx.Client, oauth: OAuth2ClientCredentials | None,
                 retry: RetryPolicy | None = None,
                 cacerts_path: str = "/{ca}/cacerts/{iso_version}/{algorithm}/") -> None:
        self.http = _Http(base_url, client, oauth, retry or RetryPolicy(), "EST server")
        self.cacerts_path = cacerts_path

    def simple_enroll(self, ca: str, csr: bytes | str, *, iso_version: str = "ISO15118-2") -> list[x509.Certificate]:
        """Send a CSR (PEM or DER) to ``/.well-known/est/{ca}/simpleenroll/{iso_version}``; leaf first."""
        _check(ca, iso_version)
        raw = csr.encode() if isinstance(csr, str) else csr
        try:
            req = x509.load_pem_x509_csr(raw) if b"-----BEGIN" in raw else x509.load_der_x509_csr(raw)
        except ValueError:
            raise InvalidRequest("not a PEM or DER PKCS#10 request") from None
        body = base64.b64encode(req.public_bytes(serialization.Encoding.DER))
        resp = self.http.request("POST", f"/.well-known/est/{ca}/simpleenroll/{iso_version}", content=body,
                                 headers={"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64"})
        if resp.status_code != 200:
            raise UpstreamError(f"EST simpleenroll ({ca}) failed: HTTP {resp.status_code}",
                                code="UpstreamRejected" if resp.status_code < 500 else "UpstreamUnavailable")
        certs = _pkcs7(resp.content)
        leaf = [c for c in certs if c.public_key() == req.public_key()]
        return leaf + [c for c in certs if c not in leaf]

    def cacerts(self, ca: str, *, iso_version: str = "ISO15118-2",
                algorithm: str = "secp256r1") -> list[x509.Certificate]:
        _check(ca, iso_version)
        if algorithm not in ("secp256r1", "secp521r1", "ed448"):
            raise InvalidRequest("algorithm must be secp256r1, secp521r1 or ed448")
        path = self.cacerts_path.format(ca=ca, iso_version=iso_version, algorithm=algorithm)
        resp = self.http.request("GET", path, headers={"Content-Transfer-Encoding": "base64"})
        if resp.status_code != 200:
            raise UpstreamError(f"EST cacerts ({ca}) failed: HTTP {resp.status_code}", code="UpstreamRejected")
        return _pkcs7(resp.content)


def _check(ca: str, iso_version: str) -> None:
    if ca.rsplit("-", 1)[-1] not in ("mo", "cps", "oem", "cpo", "veh"):
        raise InvalidRequest("EST ca must be mo, cps, oem, cpo or veh (optionally with a prefix)")
    if iso_version not in ("ISO15118-2", "ISO15118-20"):
        raise InvalidRequest("iso-version must be ISO15118-2 or ISO15118-20")


def _pkcs7(content: bytes) -> list[x509.Certificate]:
    try:
        der = base64.b64decode(b"".join(content.split()), validate=True)
        return list(pkcs7.load_der_pkcs7_certificates(der))
    except ValueError:
        raise UpstreamError("EST answer is not a base64 PKCS#7 certs-only structure",
                            code="UpstreamBadAnswer") from None


@dataclass(frozen=True)
class EstProvider:
    """An upstream EST CA for SECC (V2G) certificates: which ``{ca}`` label to enroll with and its client."""

    name: str
    client: EstClient
    ca: str = "cpo"

    def enroll_secc(self, csr: bytes | str, *, iso15118_20: bool = False) -> list[x509.Certificate]:
        """simpleenroll the station's CSR; the chain for CertificateSigned: leaf first, self-signed roots dropped."""
        certs = self.client.simple_enroll(self.ca, csr, iso_version="ISO15118-20" if iso15118_20 else "ISO15118-2")
        if not certs:
            raise UpstreamError(f"EST server {self.name!r} returned no certificate", code="UpstreamBadAnswer")
        return [c for c in certs if c.subject != c.issuer or c is certs[0]]


# --- routing ------------------------------------------------------------------------------------------------


@dataclass
class ProviderRouter:
    """Station-id glob patterns and eMSP ids (EMAID country + provider, e.g. ``DEHUB``) -> provider name."""

    providers: dict[str, ContractProvider] = field(default_factory=dict)
    stations: dict[str, str] = field(default_factory=dict)
    emsps: dict[str, str] = field(default_factory=dict)
    default: str = "local"
    est_providers: dict[str, EstProvider] = field(default_factory=dict)
    est_stations: dict[str, str] = field(default_factory=dict)  # station glob -> EST provider name ("local")

    def route_est(self, station_id: str) -> EstProvider | None:
        """The EST CA that signs this station's SECC (V2G) certificates; None = our own CPO Sub-CA 2."""
        for pattern, target in self.est_stations.items():
            if fnmatch.fnmatchcase(station_id, pattern):
                if target == "local":
                    return None
                provider = self.est_providers.get(target)
                if provider is None:
                    raise UpstreamError(f"EST routing names an unknown provider {target!r}",
                                        code="UpstreamMisconfigured")
                return provider
        return None

    def route(self, station_id: str, emsp: str | None = None) -> ContractProvider | None:
        name = self.default
        if emsp and emsp.upper() in self.emsps:
            name = self.emsps[emsp.upper()]
        else:
            for pattern, target in self.stations.items():
                if fnmatch.fnmatchcase(station_id, pattern):
                    name = target
                    break
        if name == "local":
            return None
        provider = self.providers.get(name)
        if provider is None:
            raise UpstreamError(f"routing names an unknown provider {name!r}", code="UpstreamMisconfigured")
        return provider

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, client: httpx.Client | None = None,
                    retry: RetryPolicy | None = None) -> ProviderRouter:
        """Build from a mapping (the JSON of ``PNC_CONTRACT_ROUTING``)::

            {"providers": {"hubject": {"type": "hubject-ccp", "base_url": "https://…",
                                       "token_url": "https://…/oauth/token", "client_id": "…",
                                       "client_secret_env": "HUBJECT_SECRET", "audience": "https://…"}},
             "stations": {"DE*HUB*": "hubject"}, "emsps": {"DEHUB": "hubject"}, "default": "local"}

        SECC certificates from an upstream EST CA (OPCP ``est.v1.json``) instead of our CPO Sub-CA 2::

            "est": {"providers": {"pki-est": {"base_url": "https://…", "ca": "cpo", "token_url": "…",
                                              "client_id": "…", "client_secret_env": "EST_SECRET",
                                              "cacerts_path": "/{ca}/cacerts/{iso_version}/{algorithm}/"}},
                    "stations": {"DE*HUB*": "pki-est", "*": "local"}}

        Client secrets come from ``client_secret_env`` (an environment variable) or ``client_secret_file``, never
        from the routing JSON itself.
        """
        http = client or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        providers: dict[str, ContractProvider] = {}
        for name, spec in dict(config.get("providers", {})).items():
            if spec.get("type") != "hubject-ccp":
                raise InvalidRequest(f"provider {name!r}: unknown type {spec.get('type')!r} (supported: hubject-ccp)")
            providers[name] = HubjectCcpProvider(name, spec["base_url"], client=http, oauth=_oauth(name, spec, http),
                                                 retry=retry)
        est = dict(config.get("est", {}))
        est_providers: dict[str, EstProvider] = {}
        for name, spec in dict(est.get("providers", {})).items():
            if not spec.get("base_url"):
                raise InvalidRequest(f"EST provider {name!r}: base_url is required")
            ca = str(spec.get("ca", "cpo"))
            _check(ca, "ISO15118-2")
            kwargs: dict[str, Any] = {"cacerts_path": str(spec["cacerts_path"])} if spec.get("cacerts_path") else {}
            est_providers[name] = EstProvider(name, EstClient(spec["base_url"], client=http,
                                                              oauth=_oauth(name, spec, http), retry=retry, **kwargs),
                                              ca)
        router = cls(providers, dict(config.get("stations", {})), {k.upper(): v for k, v in
                                                                     dict(config.get("emsps", {})).items()},
                     str(config.get("default", "local")), est_providers, dict(est.get("stations", {})))
        for target in [*router.stations.values(), *router.emsps.values(), router.default]:
            if target != "local" and target not in providers:
                raise InvalidRequest(f"routing names an unknown provider {target!r}")
        for target in router.est_stations.values():
            if target != "local" and target not in est_providers:
                raise InvalidRequest(f"EST routing names an unknown provider {target!r}")
        return router

    @classmethod
    def from_json(cls, text: str, **kwargs: Any) -> ProviderRouter:
        try:
            config = json.loads(text)
        except ValueError:
            raise InvalidRequest("contract routing is not valid JSON") from None
        if not isinstance(config, dict):
            raise InvalidRequest("contract routing must be a JSON object")
        return cls.from_config(config, **kwargs)


def _oauth(name: str, spec: Mapping[str, Any], http: httpx.Client) -> OAuth2ClientCredentials | None:
    if not spec.get("token_url"):
        return None
    return OAuth2ClientCredentials(OAuth2Config(
        token_url=spec["token_url"], client_id=spec["client_id"], client_secret=_secret(name, spec),
        audience=spec.get("audience"), scope=spec.get("scope"), style=spec.get("style", "json")), http)


def _secret(name: str, spec: Mapping[str, Any]) -> str:
    if spec.get("client_secret_env"):
        value = os.environ.get(str(spec["client_secret_env"]))
        if not value:
            raise InvalidRequest(f"provider {name!r}: environment variable {spec['client_secret_env']} is not set")
        return value
    if spec.get("client_secret_file"):
        return Path(str(spec["client_secret_file"])).read_text().strip()
    raise InvalidRequest(f"provider {name!r}: give client_secret_env or client_secret_file")
