"""Pure pieces of scope integrity and sweep safety: window gaps, per-job judging, kept look-alikes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sovaudit.audit import job_scope
from sovaudit.audit.collectors.job import JobScope
from sovaudit.audit.collectors.scope import _gaps, job_purpose
from sovaudit.audit.evidence import EvidenceItem, EvidenceLog
from sovaudit.audit.models import ControlContext, JobRef, Outcome, Scope
from sovaudit.audit.probe_lookalikes import kept_findings
from sovaudit.audit.registry import all_controls
from sovaudit.policies.pack import parse_lookback, resolve_policy

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def item(number: int, purpose: str, body: dict[str, Any], status: int = 200) -> EvidenceItem:
    return EvidenceItem(f"{number:04d}", purpose, "svc", "m", {"httpMethod": "GET", "url": "u"}, status,
                        json.dumps(body).encode(), "2026-11-26T12:00:00Z")


def job(name: str, start: int, end: int | None) -> JobScope:
    return JobScope(name, f"{name}-uid", T0 + timedelta(minutes=start),
                    None if end is None else T0 + timedelta(minutes=end), None)


def test_a_window_covering_every_job_has_no_gap_and_a_short_one_names_the_part_left_out() -> None:
    jobs = [job("a", 0, 60), job("b", -200, -140)]
    assert _gaps(jobs, T0 - timedelta(minutes=210), T0 + timedelta(minutes=70), T0 + timedelta(hours=3)) == ()
    gaps = _gaps(jobs, T0 - timedelta(minutes=100), T0 + timedelta(minutes=30), T0 + timedelta(hours=3))
    assert len(gaps) == 2   # b lies wholly before the window; a ends after it
    assert any("job a ended" in g and "2026-11-26T12:30:00" in g for g in gaps)
    assert any("job b was created" in g and "08:40:00" in g and "09:40:00" in g for g in gaps)   # all of b
    # A running job ends "now": a window ending earlier leaves its tail out.
    running = _gaps([job("c", 0, None)], T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=40))
    assert running and "still running" in running[0]


def test_one_job_keeps_the_plain_purposes_several_get_one_each() -> None:
    assert job_purpose("batch.job", "a", 1) == "batch.job"
    assert job_purpose("batch.job", "a", 2) == "batch.job:a"


def test_per_job_context_presents_that_jobs_items_under_the_plain_purpose() -> None:
    log = EvidenceLog((item(1, "batch.job:a", {"name": "a"}), item(2, "batch.job:b", {"name": "b"}),
                       item(3, "compute.job_instances", {})))
    scope = Scope(job="a", job_uid="ua", jobs=(JobRef("a", "ua"), JobRef("b", "ub")))
    ctx = ControlContext(evidence=log, policy=resolve_policy("us"), scope=scope, today=T0.date())
    for ref in scope.jobs:
        sub = job_scope.for_job(ctx, ref)
        (body,) = list(sub.evidence.bodies("batch.job"))
        assert body["name"] == ref.name and sub.scope.job_uid == ref.uid
        assert sub.scope.job_uids == ("ua", "ub")   # every judged job's workers stay "the run's"
    sec02 = next(c for c in all_controls() if c.meta.id == "SEC-02")
    sov01 = next(c for c in all_controls() if c.meta.id == "SOV-01")
    assert job_scope.judges_per_job(sec02.meta, ctx) and not job_scope.judges_per_job(sov01.meta, ctx)


def test_window_gaps_error_only_window_dependent_controls() -> None:
    scope = Scope(job="a", window_start=T0, window_end=T0, window_gaps=("job a ... is not searched",))
    ctx = ControlContext(evidence=EvidenceLog(()), policy=resolve_policy("us"), scope=scope, today=T0.date())
    by_id = {c.meta.id: c.meta for c in all_controls()}
    assert [f.outcome for f in job_scope.window_gap_findings(by_id["SEC-04"], ctx)] == [Outcome.ERROR]
    assert job_scope.window_gap_findings(by_id["SOV-01"], ctx) == []


def _activity(resource: str, principal: str) -> dict[str, Any]:
    return {"logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity", "insertId": resource,
            "timestamp": "2026-11-26T11:00:00Z",
            "protoPayload": {"methodName": "google.cloud.batch.v1.BatchService.CreateJob", "resourceName": resource,
                             "authenticationInfo": {"principalEmail": principal}}}


def test_a_listed_lookalike_nobody_deleted_fails_naming_its_creator_and_a_swept_one_does_not() -> None:
    kept = "projects/1/locations/europe-west4/jobs/sovaudit-probe-x-europe-west4"
    swept = "projects/1/locations/europe-west4/jobs/sovaudit-probe-y-europe-west4"
    unlabelled = "projects/1/locations/europe-west4/jobs/sovaudit-probe-z-europe-west4"
    listing = {"jobs": [{"name": kept, "labels": {"sovaudit-probe": "x"}},
                        {"name": swept, "labels": {"sovaudit-probe": "y"}},
                        {"name": unlabelled}]}
    log = EvidenceLog((item(1, "cleanup.list:batch:europe-west4", listing),
                       item(2, "cleanup.creates", {"entries": [_activity(kept.replace("projects/1", "projects/p"),
                                                                         "insider@example.org")]}),
                       item(3, f"probe.cleanup:{swept}", {})))
    findings = list(kept_findings(log, ("batch-job",)))
    assert [f.outcome for f in findings] == [Outcome.FAIL]
    assert kept in findings[0].resource and "insider@example.org" in findings[0].message
    assert list(kept_findings(log, ("bucket", "dataset"))) == []


def test_lookback_parsing() -> None:
    assert parse_lookback("24h") == timedelta(hours=24) and parse_lookback("7d") == timedelta(days=7)
    assert parse_lookback("0h") is None and parse_lookback("1w") is None and parse_lookback("") is None
