"""Run a CSMS root rotation and SIGKILL this process right after the N-th gateway call (crash test helper)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from api.context import build_services
from api.lifecycle import lifecycle_for, load_gateway
from api.settings import Settings
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.rotation import RotationOptions


class KillingGateway:
    def __init__(self, inner: Any, kill_after: int) -> None:
        self.inner = inner
        self.kill_after = kill_after
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def enqueue(self, station_id: str, action: str, payload: dict[str, Any], job_id: str) -> str:
        mid = self.inner.enqueue(station_id, action, payload, job_id)
        self.calls += 1
        if self.calls == self.kill_after:  # the message is queued, the job row does not know it yet
            os.kill(os.getpid(), signal.SIGKILL)
        return str(mid)


def main() -> None:
    services = build_services(Settings())
    inner = load_gateway(os.environ["PNC_LIFECYCLE_GATEWAY"], services)
    lc = lifecycle_for(services, gateway=KillingGateway(inner, int(sys.argv[1])))
    job = lc.rotation.start(lc.engine, RotationOptions(Hierarchy.CSMS, batch=8, rate=0), "crash-test")
    assert job.id is not None
    print(job.id, flush=True)
    lc.engine.run(job.id)


if __name__ == "__main__":
    main()
