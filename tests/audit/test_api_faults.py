"""API faults end in retry-then-success or ERROR naming the API and method, never a pass on missing evidence.

Each test injects one fault into the simulator and runs the real engine (`engine.collect` + `judge`)
or the CLI through the official clients. Times are measured on the wall clock: Retry-After must be
honoured for real, and a dead API must not hold a release gate past its deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from sovaudit.audit import engine
from sovaudit.audit.evidence import EvidenceItem, EvidenceLog
from sovaudit.audit.models import Outcome, RunResult
from sovaudit.audit.recorder import CollectionError, Recorder, retry_after_seconds
from sovaudit.cli import main
from sovaudit.cloud import Target
from sovaudit.policies.pack import resolve_policy
from sovaudit.simulator.node import load_scenario, scenario_names
from sovaudit.simulator.server import SimServer

JOB = "preprocess-genomes-001"
FAULT_SCENARIOS = [load_scenario(name) for name in scenario_names() if name.startswith("fault-")]


def collect_and_judge(sim: SimServer, deadline: float, *, probes: bool = False) -> tuple[EvidenceLog, RunResult]:
    pack = resolve_policy("us")
    options = engine.VerifyOptions(target=Target.parse(sim.url), pack=pack, job=JOB, probes=probes,
                                   api_deadline_seconds=deadline)
    collected = engine.collect(options, progress=lambda _: None)
    result = engine.judge(collected.evidence, pack, collected.scope, run_id=options.run_id, target=sim.url,
                          principal="anonymous", started_at=collected.started_at,
                          finished_at=collected.finished_at)
    return collected.evidence, result


def outcome(result: RunResult, control_id: str) -> Any:
    return next(c for c in result.controls if c.meta.id == control_id)


def items(log: EvidenceLog, prefix: str) -> list[EvidenceItem]:
    return [item for item in log if item.purpose == prefix or item.purpose.startswith(prefix + "#")]


def at(item: EvidenceItem) -> float:
    return datetime.fromisoformat(item.collected_at.replace("Z", "+00:00")).timestamp()


def cli_verify(sim: SimServer, *extra: str, deadline: float = 2.0) -> tuple[int, dict[str, Any], float]:
    began = time.monotonic()
    result = CliRunner().invoke(main, ["verify", "--policy", "us", "--target", sim.url, "--job", JOB, "--format",
                                       "json", "--api-deadline", str(deadline), *extra], catch_exceptions=False)
    elapsed = time.monotonic() - began
    document = json.loads(result.stdout[result.stdout.find("{"):])
    return result.exit_code, document, elapsed


# -- Retry-After ------------------------------------------------------------------------------------

def test_two_429s_with_retry_after_1_are_waited_out_then_the_control_passes(sim: SimServer) -> None:
    # Only getEffectivePolicy: SOV-01 also reads the policy set at each level of the hierarchy.
    sim.state.options["faults"] = [{"api": "orgpolicy", "path": ":getEffectivePolicy$", "status": 429,
                                    "retry_after": 1, "times": 2}]
    log, result = collect_and_judge(sim, deadline=10)
    attempts = items(log, "orgpolicy.effective")
    assert [i.status for i in attempts] == [429, 429, 200]
    assert [i.purpose for i in attempts] == ["orgpolicy.effective#attempt-1", "orgpolicy.effective#attempt-2",
                                             "orgpolicy.effective"]
    # Each wait is at least the second the server asked for (timestamps have millisecond precision).
    assert at(attempts[1]) - at(attempts[0]) >= 0.999 and at(attempts[2]) - at(attempts[1]) >= 0.999
    assert at(attempts[2]) - at(attempts[0]) >= 1.998
    assert outcome(result, "SOV-01").outcome is Outcome.PASS


def test_retry_after_beyond_the_deadline_gives_up_at_once_instead_of_retrying_early(sim: SimServer) -> None:
    sim.state.options["faults"] = [{"api": "orgpolicy", "status": 429, "retry_after": 3600}]
    recorder = Recorder(deadline_seconds=10)
    session = recorder.hook_session(requests.Session())
    url = f"{sim.url}/v2/projects/fed-node-us/policies/gcp.resourceLocations:getEffectivePolicy"
    began = time.monotonic()
    with pytest.raises(CollectionError) as caught:
        recorder.call("orgpolicy.effective", "orgpolicy", "policies.getEffectivePolicy",
                      lambda: session.get(url, timeout=5).raise_for_status())
    assert time.monotonic() - began < 10   # gave up without sleeping towards the deadline
    assert [i.status for i in recorder.log()] == [429]
    assert "orgpolicy policies.getEffectivePolicy" in caught.value.message


def test_retry_after_reads_seconds_and_http_dates_and_ignores_junk() -> None:
    from datetime import UTC

    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("Thu, 26 Nov 2026 12:00:30 GMT", now=lambda: now) == 30.0
    assert retry_after_seconds("Thu, 26 Nov 2026 11:00:00 GMT", now=lambda: now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds("-5") is None
    assert retry_after_seconds(None) is None


# -- 5xx bursts, deadlines ----------------------------------------------------------------------------

def test_503_burst_is_retried_and_the_bundle_keeps_the_failed_attempts(sim_factory: Callable[..., SimServer],
                                                                      tmp_path: Path) -> None:
    sim = sim_factory(scenarios=["fault-compute-burst"])
    code, document, _ = cli_verify(sim, "--out", str(tmp_path), "--no-probes")
    # WARNED, not PASS: --no-probes leaves SOV-02/SOV-03 SKIPPED (not proven); nothing failed or errored.
    assert code == 0 and document["verdict"] == "WARNED"
    run_dir = next(tmp_path.glob("run-*"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    entries = manifest["evidence"] if isinstance(manifest, dict) else manifest
    failed = [e for e in entries if "#attempt-" in e["purpose"]]
    assert sorted(e["status"] for e in failed) == [500, 503, 503]
    assert all(e["purpose"].startswith("compute.") for e in failed)
    for entry in failed:
        body = json.loads((run_dir / entry["path"]).read_bytes())
        assert body["error"]["code"] == entry["status"]
    # The bundle re-verifies offline to the same outcomes, failed attempts and all.
    again = CliRunner().invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "us"],
                               catch_exceptions=False)
    assert again.exit_code == 0, again.output


def test_a_permanent_503_everywhere_ends_within_the_deadline_bound(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["fault-everything-down"])
    code, document, elapsed = cli_verify(sim, deadline=2)
    assert code == 3 and document["verdict"] == "INCOMPLETE"
    # SOV-09 and CC-05 read nothing on the us pack (no Assured Workloads workload named, in-guest
    # attestation off): NOT_APPLICABLE by the pack's choice, not ERROR.
    assert {c["id"]: c["outcome"] for c in document["controls"] if c["outcome"] != "ERROR"} == {
        "SOV-09": "NOT_APPLICABLE", "CC-05": "NOT_APPLICABLE"}
    # One deadline for the job lookup, one for what depends on it, plus start-up; never one per call.
    # Typically ~4 s; the bound leaves room for a loaded machine, far below one deadline per call (40+ s).
    assert elapsed < 12, f"verify took {elapsed:.1f}s with --api-deadline 2"


def test_a_verify_process_against_a_dead_node_exits_3_and_leaves_no_thread_holding_it(
        sim_factory: Callable[..., SimServer], tmp_path: Path) -> None:
    """As a CI gate runs it: a separate process, whose exit must not wait on a client's background retry."""
    import subprocess
    import sys

    sim = sim_factory(scenarios=["fault-everything-down"])
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "sovaudit", "verify", "--policy", "us", "--target", sim.url,
                           "--job", JOB, "--format", "json", "--api-deadline", "2"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    elapsed = time.monotonic() - began
    assert done.returncode == 3, done.stderr[-2000:]
    assert json.loads(done.stdout[done.stdout.find("{"):])["verdict"] == "INCOMPLETE"
    assert "Traceback" not in done.stderr
    assert elapsed < 20, f"the process took {elapsed:.1f}s"


def test_an_api_that_outlived_its_deadline_is_not_retried_again_in_the_run(sim: SimServer) -> None:
    sim.state.options["faults"] = [{"api": "storage", "status": 503}]
    recorder = Recorder(deadline_seconds=1)
    session = recorder.hook_session(requests.Session())
    for name in ("fed-node-us-raw-vcfs", "fed-node-us-processed", "fed-node-us-elsewhere"):
        with pytest.raises(CollectionError):
            recorder.call(f"storage.bucket:{name}", "storage", "buckets.get",
                          lambda name=name: session.get(f"{sim.url}/storage/v1/b/{name}", timeout=5)
                          .raise_for_status())
    by_purpose = {p: len(items(recorder.log(), p)) for p in
                  ("storage.bucket:fed-node-us-raw-vcfs", "storage.bucket:fed-node-us-processed")}
    assert by_purpose["storage.bucket:fed-node-us-raw-vcfs"] > 1     # retried until the deadline
    assert by_purpose["storage.bucket:fed-node-us-processed"] == 1   # then the API counts as down


# -- dropped connections, expired page tokens, permissions ---------------------------------------------

def test_dropped_connection_is_a_status_0_item_and_is_retried(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["fault-dropped-connection"])
    log, result = collect_and_judge(sim, deadline=5)
    bucket_items = [i for i in log if i.purpose.startswith("storage.bucket:")]
    dropped = [i for i in bucket_items if i.status == 0]
    # The scenario drops two connections; a drop that lands on a pooled keep-alive connection is retried
    # once by urllib3 itself (a stale connection), so the recorder sees one or two failed attempts.
    assert 1 <= len(dropped) <= 2 and all(i.purpose.startswith("storage.bucket:fed-node-us-raw-vcfs#attempt-")
                                          for i in dropped)
    assert all(b"Connection aborted" in i.body or b"RemoteDisconnected" in i.body for i in dropped)
    assert "no response from storage buckets.get" in dropped[0].error_message()
    assert outcome(result, "SOV-04").outcome is Outcome.PASS


def test_a_connection_dropped_forever_is_error_naming_the_api(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["fault-kms-unreachable"])
    log, result = collect_and_judge(sim, deadline=1.5)
    sov04 = outcome(result, "SOV-04")
    assert sov04.outcome is Outcome.ERROR
    assert any("cryptoKeys.get" in f.message and "no response" in f.message for f in sov04.findings)


def test_expired_page_token_restarts_the_listing_from_page_1(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["fault-page-token-expired"])
    log, result = collect_and_judge(sim, deadline=5)
    # Two listings page through /aggregated/instances (the job's VMs; every VM of the project for SEC-09)
    # and the one-time fault hits whichever asks for a second page first: that one must start again.
    purpose = next(i.purpose.split("#")[0] for i in log if i.purpose.endswith("#attempt-1"))
    assert purpose in {"compute.job_instances", "compute.project_instances"}
    failed = [i for i in log if i.purpose == f"{purpose}#attempt-1"]
    assert [i.status for i in failed] == [200, 400]
    final = [i for i in log if i.purpose == purpose]
    assert all(i.status == 200 for i in final) and len(final) == 3      # 10 (or 11) VMs, 4 a page
    assert "pageToken" not in final[0].request["params"]                # started again from page 1
    cc02 = outcome(result, "CC-02")
    assert cc02.outcome is Outcome.PASS
    assert len([f for f in cc02.findings if f.outcome is Outcome.PASS]) == 10   # each VM once


def test_a_page_token_that_always_expires_is_error_not_a_pass_on_page_1(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["fault-page-token-always-expired"])
    _, result = collect_and_judge(sim, deadline=1.5)
    for control_id in ("CC-02", "SEC-02", "SOV-06"):
        control = outcome(result, control_id)
        assert control.outcome is Outcome.ERROR, control_id
        assert any("compute instances.aggregatedList" in f.message and "400" in f.message
                   for f in control.findings), control.findings


def test_permission_denied_is_not_retried_and_is_error_naming_api_and_method(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["fault-permission-denied"])
    log, result = collect_and_judge(sim, deadline=10)
    attempts = items(log, "orgpolicy.effective")
    assert [(i.purpose, i.status) for i in attempts] == [("orgpolicy.effective", 403)]
    sov01 = outcome(result, "SOV-01")
    assert sov01.outcome is Outcome.ERROR
    (finding,) = sov01.findings
    assert "orgpolicy policies.getEffectivePolicy" in finding.message and "403" in finding.message
    assert "orgpolicy.policy.get" in finding.message


# -- every fault scenario ----------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", FAULT_SCENARIOS, ids=[s.name for s in FAULT_SCENARIOS])
def test_every_fault_ends_in_success_or_error_naming_the_api(sim_factory: Callable[..., SimServer],
                                                             scenario: Any) -> None:
    sim = sim_factory(scenarios=[scenario.name])
    code, document, elapsed = cli_verify(sim, "--no-probes")
    assert elapsed < 20
    # The fault really happened: a recovery scenario that injected nothing would prove nothing.
    fired = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()["faults_injected"]
    assert len(fired) == len(scenario.options["faults"]) and all(entry["hits"] > 0 for entry in fired), fired
    failed = [c["id"] for c in document["controls"] if c["outcome"] == "FAIL"]
    assert not failed, f"an API fault must not read as a violation: {failed}"
    errors = [c for c in document["controls"] if c["outcome"] == "ERROR"]
    assert code == (3 if errors else 0)
    for control in errors:
        messages = " ".join(f["message"] for f in control["findings"])
        assert any(api in messages for api in ("policies.getEffectivePolicy", "cryptoKeys.get", "entries.list",
                                               "instances.aggregatedList", "instanceTemplates.get", "jobs.get",
                                               "buckets.get", "datasets.get", "servicePerimeters.list",
                                               "projects.get", "projects.getIamPolicy", "objects.list",
                                               "jobs.list", "sinks.list", "exclusions.list", "buckets.list",
                                               "not collected", "no Batch job",
                                               "routers.aggregatedList", "routes.list", "firewalls.list")), control


# -- one failed question, exactly its readers incomplete ------------------------------------------------

SINGLE_FAULTS = {
    "iam-policy-403": ({"api": "resourcemanager", "path": ":getIamPolicy$", "status": 403},
                       {"SEC-04", "SEC-05", "SEC-07", "SOV-08"}),
    # projects.get first, then getIamPolicy in the same collector: neither is known.
    # SOV-04/SOV-05 need the project number to tell the node's own IAM members from others; SOV-01
    # cannot say which folders and organization its effective rules come from without the parent.
    "project-403": ({"api": "resourcemanager", "method": "GET", "status": 403},
                    {"INT-02", "SEC-01", "SEC-03", "SEC-04", "SEC-05", "SEC-07", "SEC-08", "SOV-01", "SOV-04", "SOV-05",
                     "SOV-08"}),
    # An ancestor's audit configs are as much a part of SEC-05's evidence as the project's own.
    "org-iam-policy-403": ({"api": "resourcemanager", "path": "^/v3/organizations/.*:getIamPolicy$", "status": 403},
                           {"SEC-04", "SEC-05", "SEC-07", "SOV-08"}),
    "org-location-policy-403": ({"api": "orgpolicy", "path": "^/v2/organizations/", "status": 403}, {"SOV-01"}),
    "log-sinks-403": ({"api": "logging", "path": "/sinks$", "status": 403},
                      {"SEC-04", "SEC-06", "SEC-07", "SEC-08", "SOV-08"}),
    "perimeters-503": ({"api": "acm", "status": 503}, {"SEC-01"}),
    "manifest-listing-503": ({"api": "storage", "path": "/o$", "status": 503}, {"INT-01"}),
    "load-jobs-503": ({"api": "bigquery", "path": "/jobs$", "status": 503}, {"INT-01"}),
    # SOV-08 judges the key a dataset or bucket names: unread, that key is unknown.
    "dataset-403": ({"api": "bigquery", "path": "/datasets/", "status": 403}, {"SOV-05", "SOV-08"}),
    "raw-bucket-403": ({"api": "storage", "path": "^/storage/v1/b/fed-node-us-raw-vcfs$", "status": 403},
                       {"SOV-04", "SOV-08"}),
    "template-404": ({"api": "compute", "path": "/instanceTemplates/", "status": 404},
                     {"CC-01", "SEC-02", "SEC-03"}),
}


@pytest.mark.parametrize("case", sorted(SINGLE_FAULTS))
def test_one_failed_question_makes_exactly_its_readers_error_and_nothing_pass_on_it(sim: SimServer,
                                                                                    case: str) -> None:
    fault, readers = SINGLE_FAULTS[case]
    sim.state.options["faults"] = [fault]
    _, result = collect_and_judge(sim, deadline=1)
    judged = {c.meta.id: c.outcome for c in result.controls
             if c.outcome not in (Outcome.SKIPPED, Outcome.NOT_APPLICABLE)}  # by choice: the run's or the pack's
    assert {cid for cid, out in judged.items() if out is Outcome.ERROR} == readers
    assert all(out is Outcome.PASS for cid, out in judged.items() if cid not in readers)
