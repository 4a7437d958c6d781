"""Periodic duties of a running service: signed audit checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.context import Services

log = logging.getLogger("pnc.audit")


async def checkpoint_loop(services: Services) -> None:
    interval = services.settings.audit_checkpoint_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            cp = await asyncio.to_thread(lambda: services.audit_log().checkpoint(actor="system"))
            if cp is not None:
                log.info("audit checkpoint signed at entry %d", cp.sequence)
        except Exception as exc:  # a failing checkpoint must not stop the service; it is logged (no details)
            log.error("audit checkpoint failed: %s", type(exc).__name__)


def start(services: Services) -> asyncio.Task[None] | None:
    if services.settings.audit_checkpoint_seconds <= 0:
        return None
    return asyncio.get_running_loop().create_task(checkpoint_loop(services))


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
