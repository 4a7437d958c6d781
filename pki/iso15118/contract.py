"""Contract certificate installation and update (ISO 15118-2 CertificateInstallationReq/UpdateReq, -20 install).

The pipeline for one request (standards brief §3):

1. decode the EXI message (through the :class:`~pki.iso15118.xmldsig.ExiCodec` seam) and read it into a request;
2. validate the OEM provisioning chain to a trusted OEM or V2G root (:mod:`pki.iso15118.pathval` over
   :mod:`pki.iso15118.trust`), refuse it if we know it is revoked, and verify the header signature made with the
   OEM provisioning key over the request body (-2) / the OEMProvisioningCertificateChain (-20);
3. find the contract(s) for the vehicle's PCID (:mod:`pki.iso15118.registry`);
4. pick a CPS chain and, preferably, an MO Sub-CA 2 whose roots are in the EV's ListOfRootCertificateIDs
   (:mod:`pki.iso15118.rootids`);
5. issue a fresh contract certificate for a fresh key (P-256 for -2; P-521 or Ed448 for -20, following the OEM key),
   encrypt the key for the EV (:mod:`pki.iso15118.keywrap`), sign the response elements with the CPS leaf key
   (:mod:`pki.iso15118.xmldsig`) and encode the complete message with the request's SessionID.

Every refusal is an :class:`InstallFailure` whose ``code`` is the ISO 15118 ResponseCode:

=================================  =====================================================================
FAILED_SignatureError              request signature or digest does not verify
FAILED_CertChainError              OEM/contract chain does not lead to a trusted root (unknown OEM root, ...)
FAILED_CertificateExpired          a certificate of the presented chain is expired
FAILED_CertificateRevoked          the presented OEM provisioning / contract certificate is revoked (ours)
FAILED_NoCertificateAvailable      no contract for the vehicle, or no CPS chain to a root the EV listed
FAILED_ContractCanceled            the vehicle's contracts are cancelled or expired; update for such a contract
FAILED                             malformed or oversize message, anything else
=================================  =====================================================================
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection

from pki.authority import Authority, Issued
from pki.clock import utc
from pki.errors import NotFound, PkiError
from pki.iso15118 import keywrap
from pki.iso15118.cps import CpsProvisioner, CpsSigner
from pki.iso15118.exi.errors import ExiBaseError
from pki.iso15118.pathval import PathError, validate_path
from pki.iso15118.registry import ContractError, ContractRegistry
from pki.iso15118.rootids import RootId, select_roots
from pki.iso15118.trust import TrustStore
from pki.iso15118.xmldsig import ExiCodec, SignatureFailure, SignedElement, sign, verify
from pki.profiles import CertKind, Generation
from pki.revocation import Listener, RevocationReason, revoke
from pki.store import bulk, contract_repo, repo
from pki.store.contract_models import Contract
from pki.store.models import AuditEvent, Certificate, CertificateAuthority, CertStatus

NS_ISO2 = "urn:iso:15118:2:2013:MsgDef"
NS_ISO20 = "urn:iso:std:iso:15118:-20:CommonMessages"
NAMESPACES = {NS_ISO2: Generation.ISO15118_2, NS_ISO20: Generation.ISO15118_20}
SUPERSEDED = "superseded"

Tree = dict[str, Any]


class InstallFailure(PkiError):
    """A request we answer with a FAILED_* ResponseCode (``code``)."""

    status = 422

    def __init__(self, message: str, *, code: str = "FAILED") -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class Chain:
    leaf: bytes
    subs: tuple[bytes, ...] = ()

    def tree(self, id_: str | None = None) -> Tree:
        t: Tree = {"Id": id_} if id_ is not None else {}
        t["Certificate"] = self.leaf
        if self.subs:
            t["SubCertificates"] = {"Certificate": list(self.subs)}
        return t

    @classmethod
    def of(cls, leaf: x509.Certificate, subs: Sequence[x509.Certificate]) -> Chain:
        der = serialization.Encoding.DER
        return cls(leaf.public_bytes(der), tuple(c.public_bytes(der) for c in subs))


@dataclass(frozen=True)
class Request:
    """A decoded certificate request, codec-independent."""

    generation: Generation
    action: str  # "Install" | "Update"
    session_id: bytes
    signed: SignedElement  # what the EV signed
    signature: Tree | None
    chain: Chain  # OEM provisioning chain (install) or current contract chain (update)
    root_ids: tuple[RootId, ...]
    emaid: str | None = None  # update: the contract's EMAID
    max_chains: int = 1
    prioritized: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    exi: bytes
    response_code: str
    emaid: str
    certificate_id: int
    remaining: int = 0
    contract_ids: tuple[int, ...] = field(default=())


def _roots(t: Tree) -> tuple[RootId, ...]:
    items = t["RootCertificateID"]
    items = items if isinstance(items, list) else [items]
    return tuple(RootId(str(i["X509IssuerName"]), int(i["X509SerialNumber"])) for i in items)


def _chain(t: Tree) -> Chain:
    subs = t.get("SubCertificates", {}).get("Certificate", [])
    subs = subs if isinstance(subs, list) else [subs]
    return Chain(bytes(t["Certificate"]), tuple(bytes(s) for s in subs))


def parse_request(tree: Tree, namespace: str, action: str) -> Request:
    """Read the decoded tree (shape of ``pki.iso15118.exi.decode_message``); raises InstallFailure(FAILED)."""
    generation = NAMESPACES.get(namespace)
    if generation is None:
        raise InstallFailure(f"unsupported iso15118SchemaVersion {namespace!r}")
    try:
        if generation is Generation.ISO15118_2:
            msg = tree["V2G_Message"]
            header, body = msg["Header"], msg["Body"]
            name = "CertificateInstallationReq" if action == "Install" else "CertificateUpdateReq"
            if name not in body:
                raise InstallFailure(f"action {action} expects a {name}, got {', '.join(body)}")
            req = body[name]
            common: dict[str, Any] = {
                "generation": generation, "action": action, "session_id": bytes(header["SessionID"]),
                "signed": SignedElement(req["Id"], name, req), "signature": header.get("Signature"),
                "root_ids": _roots(req["ListOfRootCertificateIDs"]),
            }
            if action == "Install":
                return Request(chain=Chain(bytes(req["OEMProvisioningCert"])), **common)
            return Request(chain=_chain(req["ContractSignatureCertChain"]), emaid=str(req["eMAID"]), **common)
        if action != "Install":
            raise InstallFailure("ISO 15118-20 has no CertificateUpdateReq")
        req = tree["CertificateInstallationReq"]
        header = req["Header"]
        oem = req["OEMProvisioningCertificateChain"]
        emaids = req.get("PrioritizedEMAIDs", {}).get("EMAID", [])
        return Request(
            generation=generation, action=action, session_id=bytes(header["SessionID"]),
            signed=SignedElement(oem["Id"], "OEMProvisioningCertificateChain", oem), signature=header.get("Signature"),
            chain=_chain(oem), root_ids=_roots(req["ListOfRootCertificateIDs"]),
            max_chains=int(req.get("MaximumContractCertificateChains", 1)),
            prioritized=tuple(emaids if isinstance(emaids, list) else [emaids]),
        )
    except InstallFailure:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InstallFailure(f"malformed certificate request: missing or invalid {exc}") from None


def _load(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise InstallFailure(f"{what} is not a DER certificate", code="FAILED_CertChainError") from None


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _ski(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


class ContractInstaller:
    def __init__(self, authority: Authority, registry: ContractRegistry, trust: TrustStore, cps: CpsProvisioner,
                 codec: ExiCodec, *, organization: str = "pnc-pki", country: str = "DE",
                 require_contract_root_match: bool = False, revocation_listeners: tuple[Listener, ...] = ()) -> None:
        self.authority = authority
        # told of every revocation made here, so the OCSP pre-signed cache and CRLs change at once
        self.revocation_listeners = revocation_listeners
        self.registry = registry
        self.trust = trust
        self.cps = cps
        self.codec = codec
        self.organization = organization
        self.country = country
        self.require_contract_root_match = require_contract_root_match
        self.cache_seconds = 10.0  # CA topology (own roots, MO Sub-CA 2s) is read on every request
        self._topology: dict[str, tuple[float, list[x509.Certificate], list[tuple[CertificateAuthority,
                                                                                    x509.Certificate]]]] = {}
        self._topology_lock = threading.Lock()

    # --- entry point ---------------------------------------------------------------------------------------

    def process(self, exi: bytes, namespace: str, action: str, *, station_id: str = "",
                prioritized: Sequence[str] = (), max_chains: int | None = None,
                max_response_bytes: int | None = None) -> Outcome:
        try:
            tree = self.codec.decode_message(exi, namespace)
        except ExiBaseError as exc:  # malformed EXI is the EV's fault: ISO ResponseCode FAILED
            raise InstallFailure(f"the EXI request could not be decoded: {exc.message}") from None
        except PkiError:
            raise
        except Exception as exc:
            raise InstallFailure(f"the EXI request could not be decoded ({type(exc).__name__})") from None
        req = parse_request(tree, namespace, action)
        if prioritized or max_chains is not None:  # OCPP 2.1 fields override the EXI ones when given
            req = Request(**{**req.__dict__, "prioritized": tuple(prioritized) or req.prioritized,
                             "max_chains": req.max_chains if max_chains is None else max_chains})
        if req.action == "Install":
            return self.install(req, station_id=station_id, max_response_bytes=max_response_bytes)
        return self.update(req, station_id=station_id, max_response_bytes=max_response_bytes)

    # --- install -------------------------------------------------------------------------------------------

    def install(self, req: Request, *, station_id: str = "", max_response_bytes: int | None = None) -> Outcome:
        now = self.authority.clock.now()
        leaf = _load(req.chain.leaf, "OEMProvisioningCert")
        subs = [_load(s, "OEM sub-CA certificate") for s in req.chain.subs]
        view = self.trust.view(["oem", "v2g"])
        validate_path(leaf, [*subs, *view.intermediates], view.anchors, now)
        self._refuse_if_revoked(leaf, "OEM provisioning certificate")
        self._verify(req, leaf.public_key())
        pcid = _cn(leaf)
        contracts = self.registry.for_installation(pcid, prioritized=req.prioritized,
                                                   generation=req.generation.value, actor=f"station:{station_id}")
        contract, remaining = self.choose_contract(contracts, req)
        return self._respond(req, contract, leaf, pcid, station_id, remaining, max_response_bytes)

    def choose_contract(self, contracts: Sequence[Contract], req: Request) -> tuple[Contract, int]:
        """Which of the vehicle's contracts this installation delivers, and RemainingContractCertificateChains.

        ``contracts`` comes in the registry's order (EV-prioritised EMAIDs first, then the most recent).

        * ISO 15118-2 has one contract per installation and no looping: the first one (the EV's choice if the
          station passed ``prioritizedEMAIDs``, else the most recent contract); remaining is 0.
        * ISO 15118-20 lets the EV loop CertificateInstallationReq while RemainingContractCertificateChains > 0
          ([V2G20-2493] NOTE 2): contracts that have no currently valid certificate (never delivered, superseded,
          revoked or expired) come before those already delivered, each group in the registry's order, so
          consecutive requests walk through all contracts instead of re-issuing the first. Remaining = the
          other not-yet-delivered contracts, at most MaximumContractCertificateChains - 1.
        """
        if req.generation is not Generation.ISO15118_20:
            return contracts[0], 0
        delivered = {c.id for c in contracts if self._has_valid_certificate(c)}
        ordered = sorted(contracts, key=lambda c: c.id in delivered)  # stable: keeps the registry's order
        chosen = ordered[0]
        pending = [c for c in ordered[1:] if c.id not in delivered]
        return chosen, max(0, min(len(pending), max(req.max_chains, 1) - 1))

    def _has_valid_certificate(self, contract: Contract) -> bool:
        if contract.certificate_id is None:
            return False
        rec = repo.get_certificate(self.authority.db, contract.certificate_id)
        return (rec is not None and rec.status == CertStatus.VALID
                and utc(rec.not_after) > self.authority.clock.now())

    # --- update (-2) ---------------------------------------------------------------------------------------

    def update(self, req: Request, *, station_id: str = "", max_response_bytes: int | None = None) -> Outcome:
        now = self.authority.clock.now()
        leaf = _load(req.chain.leaf, "contract certificate")
        subs = [_load(s, "contract sub-CA certificate") for s in req.chain.subs]
        view = self.trust.view(["mo", "v2g"])
        validate_path(leaf, [*subs, *view.intermediates], view.anchors, now)
        self._refuse_if_revoked(leaf, "contract certificate")
        self._verify(req, leaf.public_key())
        emaid = (req.emaid or "").upper().replace("-", "")
        if _cn(leaf).upper().replace("-", "") != emaid:
            raise InstallFailure(f"eMAID {req.emaid} does not match the contract certificate CN {_cn(leaf)}",
                                 code="FAILED_CertChainError")
        try:
            contract = self.registry.get(emaid)
        except (NotFound, PkiError):
            raise InstallFailure(f"no contract with EMAID {emaid}", code="FAILED_NoCertificateAvailable") from None
        if contract.status != "active":
            raise InstallFailure(f"contract {contract.emaid} is {contract.status}", code="FAILED_ContractCanceled")
        return self._respond(req, contract, leaf, None, station_id, 0, max_response_bytes)

    # --- shared --------------------------------------------------------------------------------------------

    def _verify(self, req: Request, public_key: Any) -> None:
        if req.signature is None:
            raise SignatureFailure("the request carries no signature")
        verify(self.codec, req.signature, [req.signed], public_key, _namespace(req.generation))

    def _refuse_if_revoked(self, cert: x509.Certificate, what: str) -> None:
        if repo.status_of(self.authority.db, cert) == CertStatus.REVOKED:
            raise InstallFailure(f"the {what} is revoked", code="FAILED_CertificateRevoked")

    def _ca_topology(self, generation: Generation) -> tuple[list[x509.Certificate],
                                                             list[tuple[CertificateAuthority, x509.Certificate]]]:
        """(our roots, [(MO Sub-CA 2, its root certificate)]) of a generation, cached for ``cache_seconds``."""
        now = time.monotonic()
        with self._topology_lock:
            hit = self._topology.get(generation.value)
            if hit is not None and hit[0] > now:
                return hit[1], hit[2]
        a = self.authority
        roots = [a.ca_certificate(ca) for ca in a.cas()
                 if ca.parent_id is None and ca.certificate_id is not None and ca.generation == generation.value]
        mo = [(ca, a.ca_certificate(a.root_of(ca)))
              for ca in repo.active_cas_of_kind(a.db, CertKind.MO_SUB2.value, generation.value)]
        with self._topology_lock:
            self._topology[generation.value] = (now + self.cache_seconds, roots, mo)
        return roots, mo

    def _mo_issuer(self, generation: Generation, accept: list[x509.Certificate]) -> CertificateAuthority:
        _, cas = self._ca_topology(generation)
        for ca, root in cas:
            if root in accept:
                return ca
        if self.require_contract_root_match or not cas:
            raise InstallFailure("no contract certificate chain leads to a root the EV listed",
                                 code="FAILED_NoCertificateAvailable")
        return cas[0][0]

    def _cps_signer(self, req: Request) -> tuple[CpsSigner, list[x509.Certificate]]:
        own_roots, _ = self._ca_topology(req.generation)
        accept = select_roots(req.root_ids, own_roots)
        if not accept:
            raise InstallFailure("none of the EV's ListOfRootCertificateIDs is a root of our CPS/MO chains",
                                 code="FAILED_NoCertificateAvailable")
        try:
            return self.cps.for_roots(req.generation, accept), accept
        except NotFound as exc:
            raise InstallFailure(exc.message, code="FAILED_NoCertificateAvailable") from None

    def _respond(self, req: Request, contract: Contract, peer: x509.Certificate, pcid: str | None, station_id: str,
                 remaining: int, max_response_bytes: int | None) -> Outcome:
        signer, accept = self._cps_signer(req)
        issuer = self._mo_issuer(req.generation, accept)
        peer_key = peer.public_key()
        if req.generation is Generation.ISO15118_2:
            key: Any = ec.generate_private_key(ec.SECP256R1())
        else:
            curve = "X448" if isinstance(peer_key, ed448.Ed448PublicKey) else "SECP521"
            key = keywrap.new_contract_key_20(curve)
        previous = contract.certificate_id
        assert contract.id is not None
        contract_id = contract.id

        def link(conn: Connection, record: Certificate) -> AuditEvent:
            # in the issuance's own transaction: the contract points at its certificate from the moment the
            # certificate is valid (one commit on the hot path instead of two)
            assert record.id is not None
            contract_repo.link_certificate(conn, contract_id, record.id)
            return repo.audit_event(
                f"station:{station_id}", f"contract.{req.action.lower()}", "success", target=contract.emaid,
                details={"pcid": pcid, "serial": record.serial, "generation": req.generation.value})

        issued = self._issue_contract(contract, key, issuer, station_id, req, link)
        assert issued.record.id is not None
        try:
            exi = self._encode(req, issued, key, peer_key, pcid, signer, contract, remaining)
            if max_response_bytes is not None and len(exi) > max_response_bytes:
                raise InstallFailure(f"the response would be {len(exi)} bytes of EXI, over the "
                                     f"{max_response_bytes} the OCPP message allows")
        except Exception as exc:
            self._withdraw(issued)
            # the EV never got it: the contract goes back to the certificate it had
            contract_repo.update_contract(self.authority.db, contract_id, repo.audit_event(
                f"station:{station_id}", f"contract.{req.action.lower()}", "failed", target=contract.emaid,
                details={"pcid": pcid, "serial": issued.serial, "withdrawn": True, "reason": type(exc).__name__}),
                certificate_id=previous)
            raise
        if previous is not None and previous != issued.record.id:
            self._supersede(previous, contract.emaid)
        return Outcome(exi, "OK", contract.emaid, issued.record.id, remaining, (contract.id or 0,))

    def _issue_contract(self, contract: Contract, key: Any, issuer: CertificateAuthority, station_id: str,
                        req: Request, also: bulk.Finalised | None = None) -> Issued:
        subject = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, contract.emaid),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
            x509.NameAttribute(NameOID.COUNTRY_NAME, self.country),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "MO"),
        ])
        now = self.authority.clock.now()
        days = max(1, min((contract.valid_to.replace(tzinfo=dt.UTC) - now).days or 1, 4 * 365))
        return self.authority.issue_for_public_key(
            CertKind.CONTRACT_LEAF, subject, key.public_key(), issuer=issuer, validity_days=days,
            owner=contract.emaid, actor=f"station:{station_id}" if station_id else "cps",
            request_id=f"{req.action.lower()}:{req.session_id.hex()}"[:64], also=also)

    def _encode(self, req: Request, issued: Issued, key: Any, peer_key: Any, pcid: str | None, signer: CpsSigner,
                contract: Contract, remaining: int) -> bytes:
        ns = _namespace(req.generation)
        contract_chain = Chain.of(issued.certificate, issued.chain)
        cps_chain = Chain.of(signer.certificate, signer.chain)
        if req.generation is Generation.ISO15118_2:
            enc = keywrap.encrypt_contract_key_2(key, peer_key)
            elements = [
                SignedElement("id1", "ContractSignatureCertChain", contract_chain.tree("id1")),
                SignedElement("id2", "ContractSignatureEncryptedPrivateKey",
                              {"Id": "id2", "value": enc.encrypted_private_key}),
                SignedElement("id3", "DHpublickey", {"Id": "id3", "value": enc.dh_public_key}),
                SignedElement("id4", "eMAID", {"Id": "id4", "value": contract.emaid}),
            ]
            body: Tree = {"ResponseCode": "OK", "SAProvisioningCertificateChain": cps_chain.tree()}
            body.update({e.name: e.tree for e in elements})
            name = "CertificateInstallationRes" if req.action == "Install" else "CertificateUpdateRes"
            signature = sign(self.codec, elements, signer.key, ns)
            message = {"V2G_Message": {"Header": {"SessionID": req.session_id, "Signature": signature},
                                       "Body": {name: body}}}
            return self.codec.encode_message(message, ns)
        assert pcid is not None
        enc20 = keywrap.encrypt_contract_key_20(key, peer_key, keywrap.aad_20(pcid, _ski(issued.certificate)))
        data = {"Id": "id1", "ContractCertificateChain": contract_chain.tree(), "ECDHCurve": enc20.curve,
                "DHPublicKey": enc20.dh_public_key, enc20.element: enc20.encrypted_private_key}
        signature = sign(self.codec, [SignedElement("id1", "SignedInstallationData", data)], signer.key, ns)
        header = {"SessionID": req.session_id, "TimeStamp": int(self.authority.clock.now().timestamp()),
                  "Signature": signature}
        message = {"CertificateInstallationRes": {
            "Header": header, "ResponseCode": "OK", "EVSEProcessing": "Finished",
            "CPSCertificateChain": cps_chain.tree(), "SignedInstallationData": data,
            "RemainingContractCertificateChains": remaining}}
        return self.codec.encode_message(message, ns)

    def _withdraw(self, issued: Issued) -> None:
        """A certificate that will never be delivered is revoked at once (cessationOfOperation)."""
        assert issued.record.id is not None
        revoke(self.authority, self.authority.certificate(issued.record.id), RevocationReason.CESSATION_OF_OPERATION,
               actor="cps", listeners=self.revocation_listeners)

    def _supersede(self, certificate_id: int, emaid: str) -> None:
        revoke(self.authority, self.authority.certificate(certificate_id), RevocationReason.SUPERSEDED,
               actor=f"cps:update:{emaid}", listeners=self.revocation_listeners)


def _namespace(generation: Generation) -> str:
    return NS_ISO2 if generation is Generation.ISO15118_2 else NS_ISO20


__all__ = ["NAMESPACES", "NS_ISO2", "NS_ISO20", "Chain", "ContractError", "ContractInstaller", "InstallFailure",
           "Outcome", "PathError", "Request", "parse_request"]
