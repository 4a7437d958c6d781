"""Resumable lifecycle jobs: state in the database, one runner per job at a time, idempotent steps.

A job is advanced by :meth:`JobEngine.run` in small *ticks*. Each tick reads everything it needs from the
database, performs at most one gateway call per station, and writes the outcome back before moving on, so the
process can die at any instant: the next ``resume`` re-reads the rows and continues. Calls carry an idempotency
key ``job<id>:item<id>:<step>:<attempt>``; the gateway returns the already queued message for a repeated key,
so a crash between "enqueued" and "recorded" never duplicates a message.

Only one process runs a given job at a time: the runner holds the lease ``job:<id>`` (a row in
``scheduler_lease``), renewed on every tick. A lease left behind by a process that died on this host is taken
over at once; otherwise it expires after ``LEASE_TTL``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pki.clock import Clock, SystemClock, utc
from pki.errors import Conflict, InvalidRequest, NotFound
from pki.identifiers import decimal_id
from pki.store import lifecycle_repo as lrepo
from pki.store import repo
from pki.store.models import ItemState, JobStatus, LifecycleJob, LifecycleJobItem

LEASE_TTL = dt.timedelta(minutes=2)


def process_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobHandler(Protocol):
    """One kind of job (e.g. root rotation). ``tick`` does a bounded amount of work and says if it progressed."""

    kind: str

    def tick(self, engine: JobEngine, job: LifecycleJob) -> bool: ...


class Throttle:
    """At most ``rate`` gateway calls per second (0 = unlimited), with injectable time for tests."""

    def __init__(self, rate: float, clock: Clock, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next: dt.datetime | None = None

    def wait(self) -> None:
        if self.interval == 0:
            return
        now = self.clock.now()
        if self._next is not None and now < self._next:
            self.sleep((self._next - now).total_seconds())
            now = self.clock.now()
        self._next = max(now, self._next or now) + dt.timedelta(seconds=self.interval)


@dataclass
class JobReport:
    job: LifecycleJob
    counts: dict[str, int]
    items: list[LifecycleJobItem] = field(default_factory=list)

    def as_dict(self, with_items: bool = True) -> dict[str, Any]:
        j = self.job
        out: dict[str, Any] = {
            "id": j.id, "kind": j.kind, "status": j.status, "phase": j.phase, "target": j.target,
            "message": j.message, "actor": j.actor, "params": json.loads(j.params), "state": json.loads(j.state),
            "created_at": utc(j.created_at).isoformat(), "updated_at": utc(j.updated_at).isoformat(),
            "finished_at": utc(j.finished_at).isoformat() if j.finished_at else None,
            "counts": {s: self.counts.get(s, 0) for s in (ItemState.INSTALLED, ItemState.PENDING, ItemState.FAILED)},
        }
        if with_items:
            out["stations"] = [{"station": i.station_id, "state": i.state, "step": i.step, "reason": i.reason,
                                "attempts": i.attempts} for i in self.items]
        return out


# The database lease keeps other processes out of a running job, but it is re-entrant for its holder (host:pid);
# threads of one process (the CLI, the service's lifecycle thread, the expiry watch) are kept apart by this.
# A thread that finds the job busy leaves a re-run request, so the running thread takes one more pass before it
# lets go and the answer that woke the other thread is not lost.
_RUNNING: set[tuple[int, int]] = set()
_RERUN: set[tuple[int, int]] = set()
_RUNNING_LOCK = threading.Lock()


class JobEngine:
    def __init__(self, db: repo.Database, *, clock: Clock | None = None, handlers: list[JobHandler] | None = None,
                 holder: str | None = None) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.handlers: dict[str, JobHandler] = {h.kind: h for h in handlers or []}
        self.holder = holder or process_holder()

    # --- create / query ----------------------------------------------------------------------------------

    def create(self, kind: str, target: str, params: dict[str, Any], *, actor: str,
               state: dict[str, Any] | None = None) -> LifecycleJob:
        now = self.clock.now()
        job = LifecycleJob(kind=kind, target=target, params=json.dumps(params, sort_keys=True),
                           state=json.dumps(state or {}, sort_keys=True), actor=actor, created_at=now, updated_at=now)
        audit = repo.audit_event(actor, "job.create", "success", target=f"{kind}:{target}", details=params)
        return lrepo.add_job(self.db, job, audit)

    def get(self, job_id: int) -> LifecycleJob:
        job = lrepo.get_job(self.db, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}")
        return job

    def report(self, job_id: int, *, with_items: bool = True) -> JobReport:
        job = self.get(job_id)
        items = lrepo.list_items(self.db, job_id) if with_items else []
        return JobReport(job, lrepo.item_counts(self.db, job_id), items)

    def list_jobs(self, status: str | None = None, limit: int = 50) -> list[JobReport]:
        return [JobReport(j, lrepo.item_counts(self.db, j.id or 0)) for j in lrepo.list_jobs(self.db, status=status,
                                                                                               limit=limit)]

    # --- state helpers used by handlers ------------------------------------------------------------------

    def state(self, job: LifecycleJob) -> dict[str, Any]:
        return dict(json.loads(job.state))

    def params(self, job: LifecycleJob) -> dict[str, Any]:
        return dict(json.loads(job.params))

    def save(self, job: LifecycleJob, **changes: Any) -> LifecycleJob:
        if "state" in changes and isinstance(changes["state"], dict):
            changes["state"] = json.dumps(changes["state"], sort_keys=True)
        changes["updated_at"] = self.clock.now()
        if changes.get("status") in JobStatus.FINAL:
            changes["finished_at"] = self.clock.now()
        assert job.id is not None
        return lrepo.update_job(self.db, job.id, **changes)

    # --- control -----------------------------------------------------------------------------------------

    def cancel(self, job_id: int, actor: str) -> LifecycleJob:
        job = self.get(job_id)
        if job.status in JobStatus.FINAL:
            raise Conflict(f"job {job_id} is already {job.status}")
        audit = repo.audit_event(actor, "job.cancel", "success", target=f"{job.kind}:{job.target}",
                                 details={"job": job_id, "phase": job.phase})
        return lrepo.update_job(self.db, job_id, audit=audit, status=JobStatus.CANCELLED,
                                message=f"cancelled by {actor} in phase {job.phase}", updated_at=self.clock.now(),
                                finished_at=self.clock.now())

    def retry_failed(self, job_id: int) -> int:
        """Put failed stations back to pending at the step where they failed (fresh attempt counter)."""
        job = self.get(job_id)
        if job.status in JobStatus.FINAL:
            raise Conflict(f"job {job_id} is {job.status}")
        n = 0
        for item in lrepo.list_items(self.db, job_id, state=ItemState.FAILED):
            assert item.id is not None
            lrepo.update_item(self.db, item.id, state=ItemState.PENDING, attempts=0, message_id=None,
                              reason="retry requested", updated_at=self.clock.now())
            n += 1
        return n

    def run(self, job_id: int, *, max_ticks: int = 10_000,
            on_tick: Callable[[JobReport], None] | None = None) -> LifecycleJob:
        """Advance the job until it finishes or nothing more can happen now (stations offline, blockers)."""
        job = self.get(job_id)
        if job.status in JobStatus.FINAL:
            return job
        handler = self.handlers.get(job.kind)
        if handler is None:
            raise InvalidRequest(f"no handler for job kind {job.kind!r}")
        key = (id(self.db), job_id)
        with _RUNNING_LOCK:
            if key in _RUNNING:
                _RERUN.add(key)
                raise Conflict(f"job {job_id} is being run by another thread of this process")
            _RUNNING.add(key)
        released = False
        try:
            while True:  # each extra pass answers a caller that was turned away; they stop, so does this
                job = self._run_leased(job_id, handler, max_ticks, on_tick)
                with _RUNNING_LOCK:
                    # Checking the re-run flag and leaving _RUNNING happen under one lock: a caller that arrives
                    # in between would otherwise get Conflict, set a flag nobody reads, and its answer would sit
                    # unprocessed until the next periodic pass.
                    rerun = key in _RERUN
                    _RERUN.discard(key)
                    if not rerun or job.status in JobStatus.FINAL:
                        _RUNNING.discard(key)
                        released = True
                        return job
        finally:
            if not released:
                with _RUNNING_LOCK:
                    _RUNNING.discard(key)

    def _run_leased(self, job_id: int, handler: JobHandler, max_ticks: int,
                    on_tick: Callable[[JobReport], None] | None) -> LifecycleJob:
        self._acquire(job_id)
        try:
            for _ in range(max_ticks):
                job = self.get(job_id)
                if job.status in JobStatus.FINAL:
                    break
                if job.status == JobStatus.PLANNED:
                    job = self.save(job, status=JobStatus.RUNNING)
                progressed = handler.tick(self, job)
                if on_tick is not None:
                    on_tick(self.report(job_id, with_items=False))
                job = self.get(job_id)
                if not progressed:
                    break
                self._acquire(job_id)  # heartbeat
            return self.get(job_id)
        finally:
            lrepo.release_lease(self.db, f"job:{job_id}", self.holder)

    def run_open_jobs_for_station(self, station_id: str) -> list[int]:
        """A station reconnected: advance the open jobs it takes part in (its queued calls were just delivered)."""
        ran = []
        for job_id in lrepo.open_jobs_for_station(self.db, station_id):
            try:
                self.run(job_id)
                ran.append(job_id)
            except Conflict:
                continue  # another process is running it; it will see the answers on its next tick
        return ran

    def run_open_jobs(self) -> list[int]:
        ran = []
        for status in (JobStatus.RUNNING, JobStatus.WAITING):
            for job in lrepo.list_jobs(self.db, status=status, limit=100):
                assert job.id is not None
                try:
                    self.run(job.id)
                    ran.append(job.id)
                except Conflict:
                    continue
        return ran

    def _acquire(self, job_id: int) -> None:
        name = f"job:{job_id}"
        if lrepo.try_lease(self.db, name, self.holder, self.clock.now(), LEASE_TTL):
            return
        holder = lrepo.lease_holder(self.db, name)
        if holder is not None:
            host, _, pid_text = holder.rpartition(":")
            pid = decimal_id(pid_text)
            if host == socket.gethostname() and pid is not None and not _pid_alive(pid):
                if lrepo.steal_lease(self.db, name, holder, self.holder, self.clock.now(), LEASE_TTL):
                    return
        raise Conflict(f"job {job_id} is being run by {holder}; wait for it or for its lease to expire")
