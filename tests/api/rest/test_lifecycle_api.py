"""REST: /api/v1/jobs, root rotation, sub-CA renewal, expiring certificates — with role checks."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.context import Services
from tests.api.conftest import token_for


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_rotation_jobs_and_roles(client: TestClient, services: Services, admin_token: str) -> None:
    from api.lifecycle import LifecycleSettings, lifecycle_for

    lifecycle_for(services, settings=LifecycleSettings(gateway=""))  # no roll-out: the job prepares CAs and waits
    auditor = token_for(services, "auditor")
    plan = client.post("/api/v1/jobs/root-rotation", json={"hierarchy": "csms", "dry_run": True},
                       headers=_h(admin_token))
    assert plan.status_code == 202 and plan.json()["plan"]["new_cas"]["csms-root"] == "csms-root-g2"
    assert client.post("/api/v1/jobs/root-rotation", json={"hierarchy": "csms"},
                       headers=_h(auditor)).status_code == 403
    assert client.get("/api/v1/jobs").status_code == 401
    bad = client.post("/api/v1/jobs/root-rotation", json={"hierarchy": "nope"}, headers=_h(admin_token))
    assert bad.status_code in (400, 422)
    started = client.post("/api/v1/jobs/root-rotation", json={"hierarchy": "mo", "rate": 0},
                          headers=_h(admin_token))
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    shown = client.get(f"/api/v1/jobs/{job_id}", headers=_h(auditor))
    assert shown.status_code == 200 and shown.json()["status"] == "waiting"  # no gateway configured
    assert "gateway" in shown.json()["message"]
    assert [j["id"] for j in client.get("/api/v1/jobs", headers=_h(auditor)).json()] == [job_id]
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=_h(auditor)).status_code == 403
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=_h(admin_token)).json()["status"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{job_id}/resume", json={}, headers=_h(admin_token)).json()["status"] == \
        "cancelled"
    assert client.get("/api/v1/jobs/999", headers=_h(auditor)).status_code == 404


def test_renew_and_expiring(client: TestClient, services: Services, admin_token: str) -> None:
    operator = token_for(services, "operator")
    assert client.post("/api/v1/cas/cpo-sub2/renew", json={}, headers=_h(operator)).status_code == 403
    res = client.post("/api/v1/cas/cpo-sub2/renew", json={}, headers=_h(admin_token))
    assert res.status_code == 201 and res.json()["created"] == ["cpo-sub2-g2"]
    assert client.post("/api/v1/cas/nope/renew", json={}, headers=_h(admin_token)).status_code == 404
    exp = client.get("/api/v1/lifecycle/expiring", params={"within": "800d"}, headers=_h(operator))
    assert exp.status_code == 200 and any(e["kind"] == "cpo-sub2" for e in exp.json())
    assert client.get("/api/v1/lifecycle/expiring", params={"within": "x"}, headers=_h(operator)).status_code == 400
    assert client.get("/api/v1/lifecycle/rejections", headers=_h(operator)).json() == []
