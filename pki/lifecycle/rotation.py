"""Root rotation as a resumable job: new root (+ link certificate), new sub-CAs, fleet roll-out, retirement.

Phases (``lifecycle_job.phase``):

``prepare``
    Create the new root through the :class:`~pki.keys.base.KeyManager` (HSM or file store as configured), the
    link certificate and a mirror of the old root's sub-CA tree under the new root. Names are fixed in the job
    state before anything is created, and every creation first looks for its result, so a resumed job never
    creates a CA or link certificate twice. From here on :meth:`Authority.issuer_for` (newest active CA of a
    kind) sends all new issuance to the new chain; the old sub-CAs stay active for OCSP/CRL of existing leaves.

``rollout``
    Per station: ``install`` (InstallCertificate of the new root — the link certificate for stations that
    enforce AdditionalRootCertificateCheck) → ``verify`` (GetInstalledCertificateIds must report it; the entry
    for the old root is kept with *the hash algorithm the station used*, M04.FR.07) → ``reissue`` (TriggerMessage
    SignChargingStationCertificate / SignV2GCertificate when the station holds a certificate under the old root)
    → ``await-cert`` (a certificate for the station under the new chain is in use) → ``done``. Offline stations
    stay *pending*; the outbox delivers on reconnect and the next tick picks the answer up.

``retire``
    Only when every station is done and no valid end-entity certificate under the old root remains (superseded
    station certificates are revoked after their grace period first): DeleteCertificate of the old root on each
    station using the hash data that station reported, then the old root and its sub-CAs are marked retired.

Link certificate (M05, AdditionalRootCertificateCheck=true): the station accepts a new CSMS root only if it is
*signed by the installed root it replaces*. What it receives is therefore not the self-signed new root but a
certificate with subject = new root's subject, subjectPublicKeyInfo = new root's key, issuer = old root's subject,
AKI = old root's key identifier, SKI = new key identifier, basicConstraints CA:TRUE, signed with the old root key.
``openssl verify -CAfile old-root.pem link.pem`` succeeds (the station's acceptance check). Everything issued
under the new root (sub-CA → server/station certificates) names the new subject as issuer and carries the new
key's identifier as AKI, so it chains through the link certificate: with old root + link in the store,
``openssl verify -CAfile old+link -untrusted new-sub.pem leaf.pem`` builds leaf → new sub → link → old root;
once the old root is removed, the link certificate itself is the trust anchor (OpenSSL needs
``-partial_chain`` / X509_V_FLAG_PARTIAL_CHAIN for a non-self-signed anchor; see docs/operations.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pki.authority import Authority
from pki.clock import utc
from pki.errors import Conflict, NotFound, PkiError
from pki.hashdata import CertificateHashData, certificate_hash_data
from pki.keys.base import KeyAlgorithm
from pki.lifecycle.gateway import (
    INSTALL_TYPE,
    ROOT_KIND,
    STATION_LEAF,
    CallResult,
    CallState,
    Hierarchy,
    StationGateway,
)
from pki.lifecycle.jobs import JobEngine, Throttle
from pki.lifecycle.stations import StationLifecycle
from pki.profiles import CertKind, Generation, get_profile
from pki.store import lifecycle_repo as lrepo
from pki.store import repo
from pki.store.models import (
    CaStatus,
    Certificate,
    CertificateAuthority,
    ItemState,
    JobStatus,
    LifecycleJob,
    LifecycleJobItem,
    StationCertState,
)

KIND = "root-rotate"
_GEN_SUFFIX = re.compile(r"-g(\d+)$")
_CN_SUFFIX = re.compile(r" G\d+$")
# infrastructure of the old tree itself: its OCSP signers and the link certificate(s) it signed
EXCLUDED_FROM_IN_USE = (CertKind.OCSP_SIGNER.value, *(k.value for k in ROOT_KIND.values()))


@dataclass(frozen=True)
class RotationOptions:
    hierarchy: Hierarchy
    generation: Generation = Generation.ISO15118_2
    link_certificate: bool | None = None  # None: yes for csms, no otherwise
    batch: int = 50  # stations started per wave
    rate: float = 10.0  # gateway calls per second (0 = unlimited)
    max_attempts: int = 3
    reissue_timeout_s: int = 3600  # re-trigger a station that sent no CSR within this time
    root_validity_days: int | None = None
    sub_validity_days: int | None = None

    def resolved_generation(self) -> Generation:
        return Generation.OCPP if self.hierarchy is Hierarchy.CSMS else self.generation

    def wants_link(self) -> bool:
        return self.hierarchy is Hierarchy.CSMS if self.link_certificate is None else self.link_certificate

    def as_params(self) -> dict[str, Any]:
        return {"hierarchy": self.hierarchy.value, "generation": self.resolved_generation().value,
                "link_certificate": self.wants_link(), "batch": self.batch, "rate": self.rate,
                "max_attempts": self.max_attempts, "reissue_timeout_s": self.reissue_timeout_s,
                "root_validity_days": self.root_validity_days, "sub_validity_days": self.sub_validity_days}


def _base(name: str) -> tuple[str, int]:
    m = _GEN_SUFFIX.search(name)
    return (name[: m.start()], int(m.group(1))) if m else (name, 1)


def renamed_subject(subject: x509.Name, generation_no: int) -> x509.Name:
    """Same DN with `` G<n>`` on the CN: the new CA is distinguishable by name (path builders, OCSP name hash)."""
    attrs: list[x509.NameAttribute[Any]] = []
    for attr in subject:
        if attr.oid == NameOID.COMMON_NAME:
            cn = _CN_SUFFIX.sub("", str(attr.value)) + f" G{generation_no}"
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        else:
            attrs.append(attr)
    return x509.Name(attrs)


def descendants(db: repo.Database, ca: CertificateAuthority) -> list[CertificateAuthority]:
    """Active sub-CAs below ``ca``, parents before children."""
    out: list[CertificateAuthority] = []
    todo = [ca]
    while todo:
        current = todo.pop(0)
        assert current.id is not None
        for child in lrepo.children_of(db, current.id):
            if child.status == CaStatus.ACTIVE:
                out.append(child)
                todo.append(child)
    return out


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class RootRotation:
    """The ``root-rotate`` job handler."""

    kind = KIND

    def __init__(self, authority: Authority, gateway: StationGateway | None, lifecycle: StationLifecycle,
                 *, sleep: Any = None) -> None:
        self.authority = authority
        self.db = authority.db
        self.gateway = gateway
        self.lifecycle = lifecycle
        self._sleep = sleep
        self._throttles: dict[int, Throttle] = {}

    # --- planning ------------------------------------------------------------------------------------

    def old_root(self, options: RotationOptions) -> CertificateAuthority:
        kind = ROOT_KIND[options.hierarchy].value
        roots = [ca for ca in repo.active_cas_of_kind(self.db, kind, options.resolved_generation().value)
                 if ca.parent_id is None]
        if not roots:
            raise NotFound(f"no active {kind} for {options.resolved_generation().value}")
        return min(roots, key=lambda c: c.id or 0)  # the oldest active root is the one being replaced

    def names(self, old: CertificateAuthority) -> tuple[int, dict[str, str]]:
        """Generation number and old→new CA names (root and every active descendant)."""
        base, n = _base(old.name)
        new_no = n + 1
        existing = {ca.name for ca in self.authority.cas()}
        while f"{base}-g{new_no}" in existing:  # an earlier attempt that was abandoned keeps its name
            new_no += 1
        mapping = {old.name: f"{base}-g{new_no}"}
        for ca in descendants(self.db, old):
            mapping[ca.name] = f"{_base(ca.name)[0]}-g{new_no}"
        return new_no, mapping

    def plan(self, options: RotationOptions) -> dict[str, Any]:
        """What ``rotate`` would do, without changing anything (``--dry-run``)."""
        old = self.old_root(options)
        self._check_no_open_rotation(old)
        gen_no, mapping = self.names(old)
        stations: list[dict[str, Any]] = []
        leaf = STATION_LEAF.get(options.hierarchy)
        old_ids = [old.id or 0] + [c.id or 0 for c in descendants(self.db, old)]
        if self.gateway is not None:
            for sid in self.gateway.stations(options.hierarchy.value):
                inv = self.gateway.inventory(sid)
                link = self._use_link(options.wants_link(), inv.additional_root_certificate_check)
                reissue = bool(leaf and lrepo.latest_station_certificate(self.db, sid, leaf[0].value, old_ids))
                stations.append({"station": sid, "connected": inv.connected,
                                 "install": "link certificate" if link else "self-signed root",
                                 "reissue": leaf[1] if leaf and reissue else None})
        in_use = lrepo.valid_leaves_under(self.db, old_ids, self.authority.clock.now(),
                                          exclude_kinds=EXCLUDED_FROM_IN_USE)
        return {
            "hierarchy": options.hierarchy.value, "generation": options.resolved_generation().value,
            "old_root": old.name, "new_cas": mapping, "generation_number": gen_no,
            "link_certificate": options.wants_link(), "install_type": INSTALL_TYPE[options.hierarchy],
            "stations": stations, "gateway": self.gateway is not None,
            "valid_leaves_under_old_root": len(in_use),
            "batch": options.batch, "rate": options.rate,
        }

    def start(self, engine: JobEngine, options: RotationOptions, actor: str) -> LifecycleJob:
        old = self.old_root(options)
        self._check_no_open_rotation(old)
        gen_no, mapping = self.names(old)
        state = {"old_root": old.name, "new_root": mapping[old.name], "ca_map": mapping, "generation_number": gen_no}
        return engine.create(KIND, f"{options.hierarchy.value}:{old.name}", options.as_params(), actor=actor,
                             state=state)

    def _check_no_open_rotation(self, old: CertificateAuthority) -> None:
        for status in (JobStatus.PLANNED, JobStatus.RUNNING, JobStatus.WAITING):
            for job in lrepo.list_jobs(self.db, status=status, limit=500):
                if job.kind == KIND and json.loads(job.state).get("old_root") == old.name:
                    raise Conflict(f"job {job.id} is already rotating {old.name!r}; resume or cancel it")

    # --- the tick ------------------------------------------------------------------------------------

    def tick(self, engine: JobEngine, job: LifecycleJob) -> bool:
        if job.phase == "prepare":
            self._prepare(engine, job)
            return True
        if self.gateway is None:
            engine.save(job, status=JobStatus.WAITING, message="no station gateway configured "
                        "(PNC_STATION_GATEWAY); the service advances this job once it has one")
            return False
        if job.phase == "rollout":
            return self._rollout(engine, job)
        if job.phase == "retire":
            return self._retire(engine, job)
        return False

    # --- prepare -------------------------------------------------------------------------------------

    def _prepare(self, engine: JobEngine, job: LifecycleJob) -> None:
        params, state = engine.params(job), engine.state(job)
        gen_no = int(state["generation_number"])
        mapping: dict[str, str] = state["ca_map"]
        old = self.authority.ca(state["old_root"])
        old_cert = self.authority.ca_certificate(old)
        new_name = mapping[old.name]
        root_subject = renamed_subject(old_cert.subject, gen_no)
        new = self._ensure_ca(new_name, lambda: self.authority.create_root(
            new_name, CertKind(old.kind), Generation(old.generation), root_subject,
            key_algorithm=_alg(old), validity_days=params.get("root_validity_days"), actor=job.actor),
            root_subject, None, params.get("root_validity_days"), job.actor)
        new_cert = self.authority.ca_certificate(new)
        if params.get("link_certificate") and not state.get("link_certificate_id"):
            link_id = self._ensure_link(old, new, new_cert, job)
            state["link_certificate_id"] = link_id
            job = engine.save(job, state=state)
        for ca in descendants(self.db, old):
            if ca.name not in mapping:
                continue  # created after the job was planned (should not happen: the tree is frozen)
            parent = repo.get_ca(self.db, ca.parent_id or 0)
            assert parent is not None
            new_parent = mapping[parent.name]
            subject = renamed_subject(self.authority.ca_certificate(ca).subject, gen_no)
            self._ensure_ca(mapping[ca.name], lambda ca=ca, new_parent=new_parent, subject=subject:
                            self.authority.create_sub_ca(mapping[ca.name], CertKind(ca.kind), new_parent, subject,
                                                         key_algorithm=_alg(ca),
                                                         validity_days=params.get("sub_validity_days"),
                                                         actor=job.actor),
                            subject, self.authority.ca(new_parent), params.get("sub_validity_days"), job.actor)
        engine.save(job, phase="rollout", status=JobStatus.RUNNING, message="new CAs ready; rolling out")

    def _ensure_ca(self, name: str, create: Any, subject: x509.Name, parent: CertificateAuthority | None,
                   validity_days: int | None, actor: str) -> CertificateAuthority:
        """Create CA ``name`` unless an earlier run of this job did; finish it if that run died half-way."""
        ca = repo.get_ca_by_name(self.db, name)
        if ca is not None and ca.certificate_id is not None:
            return ca  # created by an earlier (interrupted) run of this job
        if ca is not None:
            # the key was generated and the row written, but the certificate was never signed: sign it now with
            # the key that already exists (it was never used), so names and key labels stay as planned
            signer = self.authority.keys.signer(ca.key_uri)
            if parent is None:
                profile = get_profile(CertKind(ca.kind), Generation(ca.generation))
                self.authority._issue(
                    profile, subject, signer.public_key(), issuer=ca, issuer_name=subject,
                    issuer_public_key=signer.public_key(), issuer_signer=signer, validity_days=validity_days,
                    owner=name, actor=actor, request_id=None, subject_ca=ca)
            else:
                self.authority.issue_for_public_key(CertKind(ca.kind), subject, signer.public_key(), issuer=parent,
                                                    validity_days=validity_days, owner=name, actor=actor,
                                                    subject_ca=ca)
            repo.add_audit(self.db, repo.audit_event(actor, "ca.complete", "success", target=name,
                                                     details={"why": "creation was interrupted"}))
            return self.authority.ca(name)
        created: CertificateAuthority = create()
        return created

    def _ensure_link(self, old: CertificateAuthority, new: CertificateAuthority, new_cert: x509.Certificate,
                     job: LifecycleJob) -> int:
        owner = f"link:{new.name}"
        for rec in repo.list_certificates(self.db, owner=owner, ca_id=old.id, limit=5):
            if rec.status == "valid" and rec.id is not None:
                return rec.id
        issued = issue_link_certificate(self.authority, old, new_cert, owner=owner, actor=job.actor)
        assert issued.id is not None
        return issued.id

    # --- rollout -------------------------------------------------------------------------------------

    def _rollout(self, engine: JobEngine, job: LifecycleJob) -> bool:
        assert self.gateway is not None and job.id is not None
        params = engine.params(job)
        hierarchy = Hierarchy(params["hierarchy"])
        if not lrepo.list_items(self.db, job.id):
            stations = self.gateway.stations(hierarchy.value)
            lrepo.add_items(self.db, job.id, stations, self.authority.clock.now())
            engine.save(job, message=f"{len(stations)} stations to update")
        ctx = self._context(engine, job)
        progressed = False
        started = 0
        for item in lrepo.list_items(self.db, job.id, state=ItemState.PENDING):
            fresh = item.step == "install" and item.message_id is None and item.attempts == 0
            if fresh:
                if started >= int(params["batch"]):
                    continue  # next wave
                started += 1
            progressed |= self._advance(engine, job, ctx, item)
            if engine.get(job.id).status == JobStatus.CANCELLED:
                return False
        counts = lrepo.item_counts(self.db, job.id)
        pending, failed = counts.get(ItemState.PENDING, 0), counts.get(ItemState.FAILED, 0)
        if pending == 0 and failed == 0:
            engine.save(job, phase="retire", status=JobStatus.RUNNING,
                        message="every station trusts the new root; retiring the old one")
            return True
        if not progressed:
            msg = (f"{pending} stations pending (offline or not answered yet); " if pending else "") + \
                  (f"{failed} failed — fix them and `pnc job resume --retry-failed`" if failed else "")
            engine.save(job, status=JobStatus.WAITING, message=msg.strip("; "))
        elif job.status != JobStatus.RUNNING:
            engine.save(job, status=JobStatus.RUNNING)
        return progressed

    @dataclass
    class _Ctx:
        hierarchy: Hierarchy
        install_type: str
        link_wanted: bool
        new_pem: str
        link_pem: str | None
        new_hashes: list[tuple[x509.Certificate, x509.Certificate]]  # (cert, issuer) pairs that count as "new"
        old_hashes: list[tuple[x509.Certificate, x509.Certificate]]
        old_ca_ids: list[int]
        new_ca_ids: list[int]
        max_attempts: int
        reissue_timeout_s: int

    def _context(self, engine: JobEngine, job: LifecycleJob) -> RootRotation._Ctx:
        params, state = engine.params(job), engine.state(job)
        old = self.authority.ca(state["old_root"])
        new = self.authority.ca(state["new_root"])
        old_cert, new_cert = self.authority.ca_certificate(old), self.authority.ca_certificate(new)
        link_pem = None
        new_pairs = [(new_cert, new_cert)]
        if state.get("link_certificate_id"):
            rec = repo.get_certificate(self.db, int(state["link_certificate_id"]))
            assert rec is not None and rec.der is not None
            link = x509.load_der_x509_certificate(rec.der)
            link_pem = _pem(link)
            # RFC 6960 CertID semantics (issuer = the old root) and what many stations report for any CA in their
            # store (the certificate's own subject and key, as for a self-signed root): both mean "installed"
            new_pairs += [(link, old_cert), (link, link)]
        # the old root may itself be on stations as a link certificate from the previous rotation
        old_pairs = [(old_cert, old_cert)]
        for rec in repo.list_certificates(self.db, owner=f"link:{old.name}", limit=10):
            if rec.der is not None:
                prev = x509.load_der_x509_certificate(rec.der)
                issuer_ca = repo.get_ca(self.db, rec.ca_id)
                if issuer_ca is not None:
                    old_pairs += [(prev, self.authority.ca_certificate(issuer_ca)), (prev, prev)]
        hierarchy = Hierarchy(params["hierarchy"])
        return RootRotation._Ctx(
            hierarchy=hierarchy, install_type=INSTALL_TYPE[hierarchy], link_wanted=bool(params["link_certificate"]),
            new_pem=_pem(new_cert), link_pem=link_pem, new_hashes=new_pairs, old_hashes=old_pairs,
            old_ca_ids=[old.id or 0] + [c.id or 0 for c in descendants(self.db, old)],
            new_ca_ids=[new.id or 0] + [c.id or 0 for c in descendants(self.db, new)],
            max_attempts=int(params["max_attempts"]), reissue_timeout_s=int(params["reissue_timeout_s"]),
        )

    @staticmethod
    def _use_link(wanted: bool, arcc: bool | None) -> bool:
        """Link certificate for stations that enforce AdditionalRootCertificateCheck (or when unknown)."""
        if not wanted:
            return False
        return arcc is not False

    def _throttle(self, engine: JobEngine, job: LifecycleJob) -> Throttle:
        assert job.id is not None
        if job.id not in self._throttles:
            rate = float(engine.params(job).get("rate", 0))
            self._throttles[job.id] = Throttle(rate, engine.clock, self._sleep) if self._sleep else \
                Throttle(rate, engine.clock)
        return self._throttles[job.id]

    def _call(self, engine: JobEngine, job: LifecycleJob, item: LifecycleJobItem, action: str,
              payload: dict[str, Any], max_attempts: int) -> tuple[CallResult | None, bool]:
        """Send (once) and read the answer of this step's call. Returns (answer or None, progressed)."""
        assert self.gateway is not None and item.id is not None
        item_id = item.id
        progressed = False
        if item.message_id is None:
            self._throttle(engine, job).wait()
            key = f"job{job.id}:item{item.id}:{item.step}:{item.attempts}"
            mid = self.gateway.enqueue(item.station_id, action, payload, key)
            item = lrepo.update_item(self.db, item_id, message_id=mid, reason=f"{action} queued",
                                     updated_at=engine.clock.now())
            progressed = True
        assert item.message_id is not None
        res = self.gateway.result(item.message_id)
        if res.state is CallState.PENDING:
            connected = self.gateway.inventory(item.station_id).connected
            reason = f"waiting for {action} answer" + ("" if connected else " (station offline; retried on reconnect)")
            if item.reason != reason:
                lrepo.update_item(self.db, item_id, reason=reason, updated_at=engine.clock.now())
            return None, progressed
        if res.state is CallState.ERROR:
            attempts = item.attempts + 1
            if attempts >= max_attempts:
                lrepo.update_item(self.db, item_id, state=ItemState.FAILED, attempts=attempts, message_id=None,
                                  reason=f"{action} failed {attempts}x: {res.reason()}"[:512],
                                  updated_at=engine.clock.now())
            else:
                lrepo.update_item(self.db, item_id, attempts=attempts, message_id=None,
                                  reason=f"{action} error, retrying: {res.reason()}"[:512],
                                  updated_at=engine.clock.now())
            return None, True
        return res, True

    def _advance(self, engine: JobEngine, job: LifecycleJob, ctx: RootRotation._Ctx, item: LifecycleJobItem) -> bool:
        assert self.gateway is not None and item.id is not None
        now = engine.clock.now()
        if item.step == "install":
            arcc = self.gateway.inventory(item.station_id).additional_root_certificate_check
            use_link = self._use_link(ctx.link_wanted, arcc) and ctx.link_pem is not None
            payload = {"certificateType": ctx.install_type, "certificate": ctx.link_pem if use_link else ctx.new_pem}
            res, progressed = self._call(engine, job, item, "InstallCertificate", payload, ctx.max_attempts)
            if res is None:
                return progressed
            if res.status != "Accepted":
                lrepo.update_item(self.db, item.id, state=ItemState.FAILED, message_id=None,
                                  reason=f"InstallCertificate {res.reason()}"[:512], updated_at=now)
                return True
            repo.add_audit(self.db, repo.audit_event(job.actor, "trust.install", "success", target=item.station_id,
                                                     details={"job": job.id, "type": ctx.install_type,
                                                              "link": use_link}))
            lrepo.update_item(self.db, item.id, step="verify", message_id=None, attempts=0,
                              reason="installed; verifying", updated_at=now)
            return True
        if item.step == "verify":
            res, progressed = self._call(engine, job, item, "GetInstalledCertificateIds",
                                         {"certificateType": [ctx.install_type]}, ctx.max_attempts)
            if res is None:
                return progressed
            reported = [e.get("certificateHashData", {}) for e in (res.payload or {}).get("certificateHashDataChain",
                                                                                            [])]
            new_found = _match(reported, ctx.new_hashes)
            if new_found is None:
                lrepo.update_item(self.db, item.id, state=ItemState.FAILED, message_id=None,
                                  reason="station accepted the new root but does not report it "
                                         "(GetInstalledCertificateIds)", updated_at=now)
                return True
            old_found = _match(reported, ctx.old_hashes)
            next_step = "reissue" if ctx.hierarchy in STATION_LEAF else "done"
            changes: dict[str, Any] = {"step": next_step, "message_id": None, "attempts": 0,
                                       "hash_algorithm": new_found.hash_algorithm.ocpp,
                                       "reason": "new root verified", "updated_at": now}
            if old_found is not None:
                changes["old_root_hash"] = json.dumps(old_found.to_ocpp())
            if next_step == "done":
                changes["state"] = ItemState.INSTALLED
            lrepo.update_item(self.db, item.id, **changes)
            return True
        if item.step == "reissue":
            kind, trigger, _ctype = STATION_LEAF[ctx.hierarchy]
            if lrepo.latest_station_certificate(self.db, item.station_id, kind.value, ctx.new_ca_ids) is None and \
                    lrepo.latest_station_certificate(self.db, item.station_id, kind.value, ctx.old_ca_ids) is None:
                lrepo.update_item(self.db, item.id, step="done", state=ItemState.INSTALLED, message_id=None,
                                  reason=f"new root installed; no {kind.value} certificate to re-issue",
                                  updated_at=now)
                return True
            res, progressed = self._call(engine, job, item, "TriggerMessage", {"requestedMessage": trigger},
                                         ctx.max_attempts)
            if res is None:
                return progressed
            if res.status != "Accepted":
                lrepo.update_item(self.db, item.id, state=ItemState.FAILED, message_id=None,
                                  reason=f"TriggerMessage {trigger} {res.reason()}"[:512], updated_at=now)
                return True
            lrepo.update_item(self.db, item.id, step="await-cert", message_id=None, requested_at=now,
                              reason=f"{trigger} accepted; waiting for the new certificate", updated_at=now)
            return True
        if item.step == "await-cert":
            return self._await_cert(engine, ctx, item)
        return False

    def _await_cert(self, engine: JobEngine, ctx: RootRotation._Ctx, item: LifecycleJobItem) -> bool:
        assert item.id is not None
        item_id = item.id
        now = engine.clock.now()
        kind, trigger, _ctype = STATION_LEAF[ctx.hierarchy]
        rec = lrepo.latest_station_certificate(self.db, item.station_id, kind.value, ctx.new_ca_ids)
        if rec is not None and rec.id is not None:
            row = lrepo.get_station_certificate(self.db, rec.id)
            if row is not None and row.state == StationCertState.IN_USE:
                lrepo.update_item(self.db, item_id, step="done", state=ItemState.INSTALLED,
                                  reason=f"on the new chain ({kind.value} serial {rec.serial})", updated_at=now)
                return True
            if row is not None and row.state == StationCertState.REJECTED:
                lrepo.update_item(self.db, item_id, state=ItemState.FAILED, reason=f"station rejected the new "
                                  f"certificate: {row.reason}"[:512], updated_at=now)
                return True
        requested = item.requested_at
        if requested is not None and (now - _aware(requested)).total_seconds() > ctx.reissue_timeout_s:
            attempts = item.attempts + 1
            if attempts >= ctx.max_attempts:
                lrepo.update_item(self.db, item_id, state=ItemState.FAILED, attempts=attempts,
                                  reason=f"no new certificate after {attempts} {trigger} triggers", updated_at=now)
            else:
                lrepo.update_item(self.db, item_id, step="reissue", attempts=attempts, message_id=None,
                                  reason="no CSR yet; triggering again", updated_at=now)
            return True
        return False

    # --- retire --------------------------------------------------------------------------------------

    def _retire(self, engine: JobEngine, job: LifecycleJob) -> bool:
        assert job.id is not None
        ctx = self._context(engine, job)
        self.lifecycle.revoke_due(actor=job.actor)
        blockers = lrepo.valid_leaves_under(self.db, ctx.old_ca_ids, engine.clock.now(),
                                            exclude_kinds=EXCLUDED_FROM_IN_USE)
        if blockers:
            by_kind = Counter(b.kind for b in blockers)
            summary = ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items()))
            sample = ", ".join(f"{b.kind} {b.owner or b.subject} (serial {b.serial}, until "
                               f"{_aware(b.not_after).date()})" for b in blockers[:3])
            msg = (f"old root kept: {len(blockers)} valid certificate(s) under it still in use ({summary}): "
                   f"{sample}" + (" ..." if len(blockers) > 3 else ""))
            if job.message != msg or job.status != JobStatus.WAITING:
                engine.save(job, status=JobStatus.WAITING, message=msg[:1024])
            return False
        progressed = False
        for item in lrepo.list_items(self.db, job.id):
            if item.step == "deleted" or item.state == ItemState.FAILED:
                continue
            assert item.id is not None
            if item.old_root_hash is None:
                lrepo.update_item(self.db, item.id, step="deleted", reason="on the new chain; old root not present",
                                  updated_at=engine.clock.now())
                progressed = True
                continue
            old_hash = item.old_root_hash
            if item.step != "delete":
                item = lrepo.update_item(self.db, item.id, step="delete", message_id=None, attempts=0)
            item_id = item.id
            assert item_id is not None
            hash_data = json.loads(old_hash)  # exactly as the station reported it (M04.FR.07)
            res, p = self._call(engine, job, item, "DeleteCertificate", {"certificateHashData": hash_data},
                                ctx.max_attempts)
            progressed |= p
            if res is None:
                continue
            if res.status in ("Accepted", "NotFound"):
                repo.add_audit(self.db, repo.audit_event(job.actor, "trust.delete", "success",
                                                         target=item.station_id,
                                                         details={"job": job.id, "status": res.status,
                                                                  "hashAlgorithm": hash_data.get("hashAlgorithm")}))
                lrepo.update_item(self.db, item_id, step="deleted", message_id=None,
                                  reason=f"on the new chain; old root deleted ({res.status})",
                                  updated_at=engine.clock.now())
            else:
                lrepo.update_item(self.db, item_id, state=ItemState.FAILED, message_id=None,
                                  reason=f"DeleteCertificate of the old root {res.reason()}"[:512],
                                  updated_at=engine.clock.now())
            progressed = True
        items = lrepo.list_items(self.db, job.id)
        if any(i.state == ItemState.FAILED for i in items):
            engine.save(job, status=JobStatus.WAITING, message="old root could not be deleted on some stations; "
                        "see the per-station report, then `pnc job resume --retry-failed`")
            return progressed
        if any(i.step != "deleted" for i in items):
            if not progressed:
                engine.save(job, status=JobStatus.WAITING,
                            message="waiting for stations to confirm DeleteCertificate (offline ones on reconnect)")
            return progressed
        state = engine.state(job)
        for ca_id in ctx.old_ca_ids:
            ca = repo.get_ca(self.db, ca_id)
            if ca is not None and ca.status == CaStatus.ACTIVE:
                repo.update_ca(self.db, ca_id, status=CaStatus.RETIRED)
                self.authority.forget_cas()  # the authority caches CA rows
                repo.add_audit(self.db, repo.audit_event(job.actor, "ca.retire", "success", target=ca.name,
                                                         details={"job": job.id, "replaced_by":
                                                                  state["ca_map"].get(ca.name)}))
        engine.save(job, phase="done", status=JobStatus.COMPLETED,
                    message=f"{state['old_root']} retired; {len(items)} stations on {state['new_root']}",
                    audit=None)
        repo.add_audit(self.db, repo.audit_event(job.actor, "job.complete", "success", target=f"{KIND}:{job.target}",
                                                 details={"job": job.id, "stations": len(items)}))
        return True


def issue_link_certificate(authority: Authority, old_root: CertificateAuthority, new_root_cert: x509.Certificate,
                           *, owner: str, actor: str) -> Certificate:
    """New root's subject and key, certified by the old root key (OCPP M05 AdditionalRootCertificateCheck).

    Uses the root profile with an issuer set, which gives the builder what a cross certificate needs: AKI of the
    old key, SKI of the new key, CA:TRUE with the root's (absent) path length, keyCertSign/cRLSign, no AIA/CDP.
    It goes through the authority's write-ahead issuance (record, audit event) like every other certificate.
    """
    if old_root.status != CaStatus.ACTIVE:
        raise PkiError(f"old root {old_root.name!r} is {old_root.status}; it cannot sign a link certificate")
    kind = CertKind(old_root.kind)
    generation = Generation(old_root.generation)
    profile = dataclasses.replace(get_profile(kind, generation), issuer_kind=kind, aia=False,
                                  crl_distribution_point=False)
    old_cert = authority.ca_certificate(old_root)
    remaining = (new_root_cert.not_valid_after_utc - authority.clock.now()).days
    days = max(1, min(remaining, authority.validity.limits(profile)[1]))
    signer = authority.keys.signer(old_root.key_uri)
    issued = authority._issue(
        profile, new_root_cert.subject, new_root_cert.public_key(), issuer=old_root, issuer_name=old_cert.subject,
        issuer_public_key=old_cert.public_key(), issuer_signer=signer, validity_days=days, owner=owner, actor=actor,
        request_id=None, not_after_cap=min(old_cert.not_valid_after_utc, new_root_cert.not_valid_after_utc))
    repo.add_audit(authority.db, repo.audit_event(actor, "ca.link_certificate", "success", target=owner,
                                                   details={"old_root": old_root.name, "serial": issued.record.serial}))
    return issued.record


def _match(reported: list[dict[str, str]], pairs: list[tuple[x509.Certificate, x509.Certificate]]
           ) -> CertificateHashData | None:
    """The reported entry (in the station's own hash algorithm) that denotes one of ``pairs``, if any."""
    for entry in reported:
        try:
            got = CertificateHashData.from_ocpp(entry)
        except PkiError:
            continue
        for cert, issuer in pairs:
            if certificate_hash_data(cert, issuer, got.hash_algorithm) == got:
                return got
    return None


def _alg(ca: CertificateAuthority) -> KeyAlgorithm:
    return KeyAlgorithm(ca.key_algorithm)


def _aware(value: dt.datetime) -> dt.datetime:
    return utc(value)
