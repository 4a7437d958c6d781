"""The job engine's in-process re-run contract: a caller that finds the job busy gets Conflict, and the running
pass must then tick again so the station answer that caller wanted processed is not left for the next periodic
pass (CI once saw a rotation stay 'waiting' with every station's DeleteCertificate already confirmed)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from pki.authority import Authority
from pki.errors import Conflict
from pki.lifecycle import jobs
from pki.lifecycle.jobs import JobEngine
from pki.store.lifecycle_models import JobStatus, LifecycleJob

_SEQ = itertools.count()
_SEQ_LOCK = threading.Lock()


def _seq() -> int:
    with _SEQ_LOCK:
        return next(_SEQ)


class _Waiting:
    """A handler that never progresses (the job waits for stations); it records when each tick started."""

    kind = "test-wait"

    def __init__(self) -> None:
        self.tick_starts: list[int] = []
        self.on_tick: list[threading.Event] = []

    def tick(self, engine: JobEngine, job: LifecycleJob) -> bool:
        self.tick_starts.append(_seq())
        if job.status != JobStatus.WAITING:
            engine.save(job, status=JobStatus.WAITING, message="waiting")
        return False


class _SlowRelease:
    """The engine's lock, but every release is followed by a short pause: it widens any gap between a decision
    taken under the lock and the state change that should have gone with it, so the race shows every run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        time.sleep(0.001)


def test_a_conflicting_caller_is_always_followed_by_a_tick_of_the_busy_pass(authority: Authority,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_RUNNING_LOCK", _SlowRelease())
    flagged: list[int] = []

    class _Flags(set[tuple[int, int]]):
        """Notes when a busy caller asks for a re-run (the moment its Conflict is decided)."""

        def add(self, key: tuple[int, int]) -> None:
            flagged.append(_seq())
            super().add(key)

    monkeypatch.setattr(jobs, "_RERUN", _Flags())
    handler = _Waiting()
    engine = JobEngine(authority.db, clock=authority.clock, handlers=[handler])
    job = engine.create(handler.kind, "t", {}, actor="admin:test")
    assert job.id is not None
    job_id = job.id
    runs: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
    conflicts: list[str] = []
    stop = threading.Event()

    def caller(name: str, n: int | None) -> None:
        for _ in itertools.count() if n is None else range(n):
            if n is None and stop.is_set():
                return
            start = _seq()
            try:
                engine.run(job_id)
            except Conflict:
                conflicts.append(name)
            else:
                runs[name].append((start, _seq()))

    other = threading.Thread(target=caller, args=("b", None))
    other.start()
    try:
        caller("a", 300)
    finally:
        stop.set()
        other.join(timeout=30)
    assert conflicts, "the two callers never overlapped; the test proved nothing"
    assert len(flagged) == len(conflicts)
    ticks = sorted(handler.tick_starts)
    passes = runs["a"] + runs["b"]
    for at in flagged:
        busy = [(s, e) for s, e in passes if s < at < e]
        assert len(busy) == 1, at
        end = busy[0][1]
        assert any(at < t < end for t in ticks), (
            f"a caller got Conflict at {at} but the busy pass returned at {end} without ticking again")
