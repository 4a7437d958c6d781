"""Lifecycle over REST: jobs (list/show/resume/cancel), root rotation, sub-CA renewal, expiring certificates.

Rotation and renewal change trust for the whole fleet: admin only. Reading jobs and expiry is open to the read
roles (operator, csms, auditor), so a CSMS dashboard can show progress.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query
from pydantic import BaseModel, Field

from api.deps import READ_ROLES, Actor, ServicesDep, require
from api.lifecycle import lifecycle_for
from pki.errors import Conflict, InvalidRequest
from pki.lifecycle.expiry import parse_duration
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.renewal import renew_ca
from pki.lifecycle.rotation import RotationOptions
from pki.profiles import Generation

router = APIRouter(tags=["lifecycle"])
Reader = Annotated[Actor, Depends(require(*READ_ROLES))]
Admin = Annotated[Actor, Depends(require())]


class RotateRequest(BaseModel):
    hierarchy: Literal["csms", "v2g", "mo", "oem"]
    generation: Literal["iso15118-2", "iso15118-20"] = "iso15118-2"
    link_certificate: bool | None = None
    batch: int = Field(default=50, ge=1, le=10_000)
    rate: float = Field(default=10.0, ge=0, le=10_000)
    dry_run: bool = False


class ResumeRequest(BaseModel):
    retry_failed: bool = False


class RenewRequest(BaseModel):
    cascade: bool = False
    validity_days: int | None = Field(default=None, ge=1)


@router.get("/api/v1/jobs", summary="List lifecycle jobs")
def list_jobs(services: ServicesDep, _: Reader, status: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    return [r.as_dict(with_items=False) for r in lifecycle_for(services).engine.list_jobs(status, limit)]


@router.get("/api/v1/jobs/{job_id}", summary="Show a job with its per-station report")
def get_job(job_id: int, services: ServicesDep, _: Reader) -> dict[str, Any]:
    return lifecycle_for(services).engine.report(job_id).as_dict()


@router.post("/api/v1/jobs/{job_id}/resume", summary="Resume a job (optionally retrying failed stations)")
def resume_job(job_id: int, body: ResumeRequest, services: ServicesDep, actor: Admin) -> dict[str, Any]:
    engine = lifecycle_for(services).engine
    if body.retry_failed:
        engine.retry_failed(job_id)
    engine.run(job_id)
    return engine.report(job_id).as_dict()


@router.post("/api/v1/jobs/{job_id}/cancel", summary="Cancel a job (CAs already created stay)")
def cancel_job(job_id: int, services: ServicesDep, actor: Admin) -> dict[str, Any]:
    engine = lifecycle_for(services).engine
    engine.cancel(job_id, actor.label)
    return engine.report(job_id).as_dict()


@router.post("/api/v1/jobs/root-rotation", status_code=202, summary="Rotate a root (or show the plan)")
def rotate_root(body: RotateRequest, services: ServicesDep, actor: Admin,
                background: BackgroundTasks) -> dict[str, Any]:
    lc = lifecycle_for(services)
    options = RotationOptions(Hierarchy(body.hierarchy), Generation(body.generation), body.link_certificate,
                              body.batch, body.rate)
    if body.dry_run:
        return {"dry_run": True, "plan": lc.rotation.plan(options)}
    job = lc.rotation.start(lc.engine, options, actor.label)
    assert job.id is not None
    background.add_task(_run_quietly, lc.engine, job.id)
    return lc.engine.report(job.id).as_dict()


def _run_quietly(engine: Any, job_id: int) -> None:
    try:
        engine.run(job_id)
    except Conflict:
        pass  # another runner has it


@router.post("/api/v1/cas/{name}/renew", status_code=201, summary="Renew a sub-CA with overlap")
def renew(name: str, body: RenewRequest, services: ServicesDep, actor: Admin) -> dict[str, Any]:
    created = renew_ca(services.authority, name, cascade=body.cascade, validity_days=body.validity_days,
                       actor=actor.label)
    return {"renewed": name, "created": [c.name for c in created]}


@router.get("/api/v1/lifecycle/expiring", summary="Certificates expiring soon")
def expiring(services: ServicesDep, _: Reader, within: str | None = None, kind: list[str] | None = Query(None),
             limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[dict[str, Any]]:
    try:
        window = parse_duration(within) if within else None
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return [e.as_dict() for e in lifecycle_for(services).watch.expiring(window, kind, limit)]


@router.get("/api/v1/lifecycle/rejections", summary="Rejected CertificateSigned and station security events")
def rejections(services: ServicesDep, _: Reader, station: str | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return lifecycle_for(services).stations.rejections(station, limit)
