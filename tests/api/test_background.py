"""The periodic audit checkpoint task: signs the head when there is something new; disabled with interval 0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api import background
from api.context import Services
from pki.store import repo


def test_checkpoint_loop_signs_the_head(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real_sleep = asyncio.sleep
    interval = services.settings.audit_checkpoint_seconds

    async def fake_sleep(seconds: float, *args: Any) -> None:  # the loop's interval, without waiting
        if seconds != interval:  # asyncio is global: other event loops' sleeps pass through untouched
            await real_sleep(seconds, *args)
            return
        calls.append(seconds)
        if len(calls) > 2:
            raise asyncio.CancelledError

    monkeypatch.setattr(background.asyncio, "sleep", fake_sleep)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(background.checkpoint_loop(services))
    checkpoints = repo.list_checkpoints(services.db)
    assert len(checkpoints) == 1  # the second round had nothing new to sign
    assert checkpoints[0].sequence == repo.audit_head(services.db).sequence
    assert services.audit_log().verify().checkpoints_verified == 1
    assert calls == [services.settings.audit_checkpoint_seconds] * 3


def test_interval_zero_disables_the_task(services: Services) -> None:
    services.settings.audit_checkpoint_seconds = 0

    async def run() -> object:
        return background.start(services)

    assert asyncio.run(run()) is None
