"""Charging stations as pnc-pki knows them: registration, credentials, and what their certificates must say.

Everything here is transport-free (the OCPP WebSocket endpoint and the CSMS-integration REST API both call it).
A station is bound to its registered identity: every CSR it sends is checked against its own serial number,
organisation and SECC/EVSE IDs, never against anything the message claims.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from pki import csr_policy
from pki.authority import Authority
from pki.errors import Conflict, Forbidden, InvalidRequest, NotFound, PolicyViolation, Unauthorized
from pki.hashdata import CertificateHashData, HashAlgorithm, certificate_hash_data
from pki.profiles import CertKind, Generation, get_profile
from pki.store import ocpp_repo, repo
from pki.store.models import CertificateAuthority
from pki.store.ocpp_models import OcppStation

STATION_ID = re.compile(r"^[A-Za-z0-9._~:@!$&'()*+,;=-]{1,48}$")  # OCPP-J: identity is a URL path segment, ≤48
SCRYPT_N = 2**14  # ~16 MiB, ~40 ms per check: expensive to brute-force, cheap enough at handshake rate
SCRYPT_R = 8
SCRYPT_P = 1


# --- passwords -------------------------------------------------------------------------------------------


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64): parameters travel with the hash so they can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024,
                            dklen=32)
    return "$".join(["scrypt", str(n), str(SCRYPT_R), str(SCRYPT_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p),
                                maxmem=64 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def check_password_strength(password: str) -> None:
    """OCPP 2.0.1 SecurityCtrlr.BasicAuthPassword is 16..40 characters (1.6 AuthorizationKey: 16..20 bytes hex)."""
    if not 16 <= len(password) <= 40:
        raise InvalidRequest("the Basic-auth password must be 16 to 40 characters (OCPP BasicAuthPassword)")


# --- registry --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StationSpec:
    station_id: str
    serial_number: str
    organization: str
    secc_ids: tuple[str, ...] = ()
    security_profile: int = 1
    password: str | None = None
    country: str | None = None
    integration: str = "direct"


def secc_ids_of(station: OcppStation) -> tuple[str, ...]:
    try:
        values = json.loads(station.secc_ids or "[]")
    except ValueError:
        return ()
    return tuple(str(v) for v in values)


def register_station(db: repo.Database, spec: StationSpec, *, actor: str = "system",
                     scrypt_n: int = SCRYPT_N) -> tuple[OcppStation, str | None]:
    """Register a station; returns it and the password when one was generated (shown once, stored hashed)."""
    if not STATION_ID.match(spec.station_id):
        raise InvalidRequest("station id must be 1-48 URL-safe characters (OCPP-J identity)")
    if spec.security_profile not in (1, 2, 3):
        raise InvalidRequest("security profile must be 1, 2 or 3")
    if spec.integration not in ("direct", "csms"):
        raise InvalidRequest("integration must be 'direct' or 'csms'")
    if not spec.serial_number or len(spec.serial_number) > 64 or "://" in spec.serial_number:
        raise InvalidRequest("serial number must be 1-64 characters and not a URL (A00.FR.511)")
    if not spec.organization or len(spec.organization) > 64:
        raise InvalidRequest("organisation must be 1-64 characters")
    if spec.country is not None and not re.fullmatch(r"[A-Z]{2}", spec.country):
        raise InvalidRequest("country must be an ISO 3166 alpha-2 code")
    for secc in spec.secc_ids:
        try:
            csr_policy._evse_or_secc(secc)
        except Exception:
            raise InvalidRequest(f"{secc!r} is neither an EVSE ID nor a SECC ID") from None
    generated: str | None = None
    password = spec.password
    if spec.security_profile in (1, 2):
        if password is None:
            generated = password = secrets.token_urlsafe(24)[:32]
        check_password_strength(password)
    row = OcppStation(station_id=spec.station_id, serial_number=spec.serial_number, organization=spec.organization,
                      country=spec.country, secc_ids=json.dumps(list(spec.secc_ids)),
                      security_profile=spec.security_profile, integration=spec.integration,
                      password_hash=hash_password(password, n=scrypt_n) if password else None)
    try:
        station = ocpp_repo.add_station(db, row)
    except ocpp_repo.DuplicateStation:
        raise Conflict(f"station {spec.station_id!r} is already registered") from None
    repo.add_audit(db, repo.audit_event(actor, "station.register", "success", target=spec.station_id,
                                        details={"serial": spec.serial_number, "organization": spec.organization,
                                                 "profile": spec.security_profile}))
    return station, generated


def get_station(db: repo.Database, station_id: str) -> OcppStation:
    station = ocpp_repo.get_station(db, station_id)
    if station is None:
        raise NotFound(f"no station {station_id!r}")
    return station


def remove_station(db: repo.Database, station_id: str, *, actor: str = "system") -> None:
    if not ocpp_repo.delete_station(db, station_id):
        raise NotFound(f"no station {station_id!r}")
    repo.add_audit(db, repo.audit_event(actor, "station.remove", "success", target=station_id))


# --- handshake authentication -----------------------------------------------------------------------------


def authenticate_basic(station: OcppStation, username: str | None, password: str | None) -> None:
    """Profiles 1 and 2: HTTP Basic with username = station identity (A00.FR.204)."""
    if username is None or password is None:
        raise Unauthorized("Basic authentication required")
    if username != station.station_id:
        raise Forbidden("Basic-auth user is not the station identity")
    if not verify_password(password, station.password_hash):
        raise Unauthorized("wrong station password")


def authenticate_client_certificate(authority: Authority, station: OcppStation, cert: x509.Certificate,
                                    now: dt.datetime) -> None:
    """Profile 3: the client certificate is ours (csms-sub), valid, unrevoked, CN = serial, O = organisation."""
    issuer_ca = _issuing_ca(authority, cert, {CertKind.CSMS_SUB.value})
    if issuer_ca is None:
        raise Forbidden("client certificate was not issued by our station CA")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise Forbidden("client certificate is expired or not yet valid")
    rec = repo.get_certificate_by_serial(authority.db, issuer_ca.id or 0, format(cert.serial_number, "x"))
    if rec is None or rec.status != "valid":
        raise Forbidden("client certificate is unknown or revoked")
    cn = _attr(cert.subject, NameOID.COMMON_NAME)
    org = _attr(cert.subject, NameOID.ORGANIZATION_NAME)
    if cn != station.serial_number or org != station.organization:
        raise Forbidden("client certificate subject does not match the station (CN = serial, O = organisation)")


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(key, ed448.Ed448PublicKey | ed25519.Ed25519PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except Exception:
        return False
    return cert.issuer == issuer.subject


def _issuing_ca(authority: Authority, cert: x509.Certificate, kinds: set[str]) -> CertificateAuthority | None:
    for ca in authority.cas():
        if ca.kind not in kinds or ca.certificate_id is None:
            continue
        ca_cert = authority.ca_certificate(ca)
        if ca_cert.subject == cert.issuer and verify_signed_by(cert, ca_cert):
            return ca
    return None


# --- SignCertificate: which profile, which issuer, which identity -----------------------------------------


@dataclass(frozen=True)
class SignPlan:
    kind: CertKind
    generation: Generation
    issuer: str
    expect: csr_policy.SubjectExpectation
    certificate_type: str | None  # echoed in CertificateSigned (None for 1.6 / combined without a type)


def plan_sign(authority: Authority, station: OcppStation, csr_pem: str, certificate_type: str | None, *,
              version: str, hash_root: dict[str, str] | None = None) -> SignPlan:
    """Decide and check at once (cheap: parse + policy), so the answer can be Accepted or Rejected with a reason.

    Combined (type omitted in 2.x): the CSR's subject decides — DC=CPO means a SECC (V2G) certificate, otherwise a
    station client certificate; a CSR cannot be both because the two hierarchies have different profiles.
    OCPP 1.6 SignCertificate carries no type and is the charge point (client) certificate.
    """
    csr = csr_policy.load_csr(csr_pem)
    if certificate_type is None:
        dcs = csr.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)
        is_v2g = version != "1.6" and any(d.value == "CPO" for d in dcs)
        kind = CertKind.SECC_LEAF if is_v2g else CertKind.STATION_CLIENT
        generation = Generation.ISO15118_2 if is_v2g else Generation.OCPP
    elif certificate_type == "ChargingStationCertificate":
        kind, generation = CertKind.STATION_CLIENT, Generation.OCPP
    elif certificate_type == "V2GCertificate":
        kind, generation = CertKind.SECC_LEAF, Generation.ISO15118_2
    elif certificate_type == "V2G20Certificate" and version == "2.1":
        kind, generation = CertKind.SECC_LEAF, Generation.ISO15118_20
    else:
        raise InvalidRequest(f"certificateType {certificate_type!r} is not supported", code="UnsupportedType")
    if kind is CertKind.STATION_CLIENT:
        expect = csr_policy.SubjectExpectation(common_name=station.serial_number, organization=station.organization)
    else:
        seccs = secc_ids_of(station)
        if not seccs:
            raise PolicyViolation("the station has no registered SECC/EVSE IDs for a V2G certificate",
                                  code="NoSeccId")
        expect = csr_policy.SubjectExpectation(cn_any_of=seccs, organization=station.organization)
    issuer = _pick_issuer(authority, kind, generation, hash_root)
    csr_policy.evaluate(csr, get_profile(kind, generation), expect)
    return SignPlan(kind, generation, issuer.name, expect, certificate_type)


def _pick_issuer(authority: Authority, kind: CertKind, generation: Generation,
                 hash_root: dict[str, str] | None) -> CertificateAuthority:
    """The active issuer; with a 2.1 hashRootCertificate, the one below that root (A02.FR.27)."""
    profile = get_profile(kind, generation)
    assert profile.issuer_kind is not None
    # cached for the authority's ca_cache_ttl like issuer_for (this runs for every SignCertificate), and, like it,
    # never a CA whose creation was interrupted (key and row, no certificate yet)
    candidates = [ca for ca in authority.active_cas_of_kind(profile.issuer_kind.value, generation.value)
                  if ca.certificate_id is not None]
    if not candidates:
        raise PolicyViolation(f"no active {profile.issuer_kind.value} CA for {generation.value}", code="NoIssuer")
    if hash_root is None:
        return candidates[0]
    wanted = CertificateHashData.from_ocpp(hash_root)
    for ca in candidates:
        root = authority.ca_certificate(authority.root_of(ca))
        if certificate_hash_data(root, None, wanted.hash_algorithm) == wanted:
            return ca
    raise PolicyViolation("hashRootCertificate names no root we issue under", code="UnknownRoot")


# --- InstallCertificate: only self-signed roots -----------------------------------------------------------


def check_installable_root(pem: str) -> x509.Certificate:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise InvalidRequest("certificate is not PEM X.509") from None
    if len(certs) != 1:
        raise InvalidRequest("InstallCertificate carries exactly one root certificate")
    cert = certs[0]
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise PolicyViolation("certificate has no basicConstraints; not a CA root") from None
    if not bc.ca or cert.issuer != cert.subject or not verify_signed_by(cert, cert):
        raise PolicyViolation("only self-signed root CA certificates can be installed (M05)")
    return cert


def hash_data_for(cert: x509.Certificate, issuer: x509.Certificate | None, algorithm: str) -> dict[str, str]:
    return certificate_hash_data(cert, issuer, HashAlgorithm.from_ocpp(algorithm)).to_ocpp()
