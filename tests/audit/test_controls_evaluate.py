"""Evaluation: fail-closed wrapping, NOT_APPLICABLE from the scope, waivers, severity overrides, result.json."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from test_controls_evidence import TODAY, NodeEvidence, job_scope

from sovaudit.audit.evaluate import aggregate, evaluate, probe_records
from sovaudit.audit.models import (
    ControlContext,
    ControlMeta,
    ControlResult,
    Finding,
    Outcome,
    Pillar,
    RunResult,
    Scope,
    Severity,
)
from sovaudit.audit.registry import DuplicateControl, RegisteredControl, all_controls, control, get
from sovaudit.policies.pack import InGuestAttestation, PolicyPack, Waiver, resolve_policy


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def with_waivers(pack: PolicyPack, *waivers: Waiver) -> PolicyPack:
    return dataclasses.replace(pack, waivers=tuple(waivers))


def public_bucket(node: NodeEvidence) -> None:
    node.body("storage.bucket:fed-node-us-processed")["iamConfiguration"]["publicAccessPrevention"] = "inherited"


def fake_control(check, **meta_changes) -> RegisteredControl:
    meta = ControlMeta(id="SEC-99", title="test", pillar=Pillar.CONTROLS, severity=Severity.LOW, rationale="r",
                       remediation="x", frameworks={}, reads=())
    return RegisteredControl(dataclasses.replace(meta, **meta_changes), check)


# ---- aggregation and fail-closed ----------------------------------------------------------------

def test_aggregate_orders_fail_over_error_over_waived_over_pass() -> None:
    ok, bad, err = Finding.ok("r", "m"), Finding.fail("r", "m"), Finding.error("r", "m")
    assert aggregate([ok, err, bad]) == Outcome.FAIL
    assert aggregate([ok, err]) == Outcome.ERROR
    assert aggregate([ok, dataclasses.replace(bad, outcome=Outcome.WAIVED)]) == Outcome.WAIVED
    assert aggregate([]) == Outcome.ERROR


def test_a_control_with_no_findings_is_error(node: NodeEvidence) -> None:
    result = evaluate(node.context(), [fake_control(lambda ctx: [])])[0]
    assert result.outcome == Outcome.ERROR and "never passes" in result.findings[0].message


def test_a_crashing_control_is_error_and_keeps_earlier_findings(node: NodeEvidence) -> None:
    def check(ctx: ControlContext) -> Iterator[Finding]:
        yield Finding.ok("a", "fine")
        raise KeyError("allocationPolicy")

    result = evaluate(node.context(), [fake_control(check)])[0]
    assert result.outcome == Outcome.ERROR
    assert [f.outcome for f in result.findings] == [Outcome.PASS, Outcome.ERROR]
    assert "KeyError" in result.findings[1].message


def test_a_control_cannot_waive_itself(node: NodeEvidence) -> None:
    result = evaluate(node.context(), [fake_control(lambda ctx: [Finding(Outcome.WAIVED, "r", "m")])])[0]
    assert result.outcome == Outcome.FAIL


def test_every_control_errors_on_an_empty_evidence_log(node: NodeEvidence) -> None:
    node.answers.clear()
    # With a pack that names an Assured Workloads workload and turns in-guest attestation on, so SOV-09
    # and CC-05 have something to read too.
    pack = dataclasses.replace(node.pack, assured_workload="organizations/161803398874/locations/us-central1/"
                                                          "workloads/genomics-sovereign",
                               confidential=dataclasses.replace(node.pack.confidential,
                                                                in_guest_attestation=InGuestAttestation(enabled=True)))
    results = evaluate(node.context(pack=pack))
    assert {r.id: r.outcome for r in results} == {r.id: Outcome.ERROR for r in results}


def test_only_the_packs_optional_controls_are_not_applicable_on_an_empty_log(node: NodeEvidence) -> None:
    # The us pack names no Assured Workloads workload (SOV-09) and leaves in-guest attestation off (CC-05).
    node.answers.clear()
    results = {r.id: r for r in evaluate(node.context())}
    assert {i for i, r in results.items() if r.outcome != Outcome.ERROR} == {"SOV-09", "CC-05"}
    assert results["CC-05"].outcome == Outcome.NOT_APPLICABLE
    assert results["SOV-09"].outcome == Outcome.NOT_APPLICABLE
    assert results["SOV-09"].findings[0].message == "the pack names no Assured Workloads workload"


# ---- SKIPPED (not run by the user's choice) -----------------------------------------------------

def test_posture_only_skips_job_controls_naming_the_option(node: NodeEvidence) -> None:
    scope = Scope(posture_only=True, reasons=("--posture-only given",))
    results = {r.id: r for r in evaluate(node.context(scope))}
    job_controls = [c.meta.id for c in all_controls() if c.meta.needs_job]
    assert len(job_controls) >= 14 and {"INT-02", "CC-04", "CC-05", "SOV-07"} <= set(job_controls)
    # CC-05 is off in the us pack: the pack's NOT_APPLICABLE comes before the run's choices.
    assert results["CC-05"].outcome == Outcome.NOT_APPLICABLE
    for control_id in set(job_controls) - {"CC-05"}:
        # SKIPPED, never NOT_APPLICABLE: the policy did not say the control does not apply, the user chose.
        assert results[control_id].outcome == Outcome.SKIPPED
        assert results[control_id].findings[0].message.startswith("not run by choice: --posture-only")
    assert results["SOV-01"].outcome == Outcome.PASS
    assert results["SOV-08"].outcome == Outcome.PASS   # key policies judged; uses need a run


def test_no_probes_skips_probe_controls_naming_the_option(node: NodeEvidence) -> None:
    results = {r.id: r for r in evaluate(node.context(job_scope(probes_enabled=False)))}
    assert results["SOV-02"].outcome == Outcome.SKIPPED
    assert results["SOV-03"].findings[0].message.startswith("not run by choice: --no-probes")
    assert probe_records(node.context(job_scope(probes_enabled=False))) == []


def test_a_run_with_a_skipped_critical_control_is_warned_never_pass(node: NodeEvidence) -> None:
    ctx = node.context(job_scope(probes_enabled=False))
    result = dataclasses.replace(run_result(node), controls=tuple(evaluate(ctx)))
    assert result.verdict == "WARNED" and result.exit_code == 0
    data = result.to_json()
    assert data["verdict"] == "WARNED" and data["summary"]["SKIPPED"] == 2
    assert RunResult.from_json(data).to_json() == data


def test_job_controls_error_when_no_job_is_in_scope_without_posture_only(node: NodeEvidence) -> None:
    assert node.run("CC-02", scope=Scope()).outcome == Outcome.ERROR


# ---- waivers ------------------------------------------------------------------------------------

def test_a_valid_waiver_turns_the_fail_into_waived_and_is_shown(node: NodeEvidence) -> None:
    public_bucket(node)
    waiver = Waiver("SOV-04", "projects/_/buckets/fed-node-us-proc*", "security@example.org",
                    "legacy bucket, migration INC-42", date(2027, 3, 31))
    result = node.run("SOV-04", pack=with_waivers(node.pack, waiver))
    assert result.outcome == Outcome.WAIVED
    assert result.waiver == waiver
    assert "waived until 2027-03-31 by security@example.org" in result.findings[1].message


def test_an_expired_waiver_does_not_waive_and_says_so(node: NodeEvidence) -> None:
    public_bucket(node)
    waiver = Waiver("SOV-04", "projects/_/buckets/*", "security@example.org", "temporary", date(2026, 11, 25))
    result = node.run("SOV-04", pack=with_waivers(node.pack, waiver))
    assert result.outcome == Outcome.FAIL and result.waiver is None
    assert "expired on 2026-11-25" in result.findings[1].message


def test_a_waiver_is_valid_through_its_expiry_day(node: NodeEvidence) -> None:
    public_bucket(node)
    waiver = Waiver("SOV-04", "*", "o", "j", TODAY)
    assert node.run("SOV-04", pack=with_waivers(node.pack, waiver)).outcome == Outcome.WAIVED


def test_a_waiver_for_another_resource_or_control_has_no_effect(node: NodeEvidence) -> None:
    public_bucket(node)
    pack = with_waivers(node.pack,
                        Waiver("SOV-04", "projects/_/buckets/fed-node-us-raw-vcfs", "o", "j", date(2027, 1, 1)),
                        Waiver("SOV-05", "*", "o", "j", date(2027, 1, 1)))
    result = node.run("SOV-04", pack=pack)
    assert result.outcome == Outcome.FAIL and "waive" not in result.findings[1].message


def test_a_waiver_never_covers_an_error(node: NodeEvidence) -> None:
    node.drop("storage.bucket:fed-node-us-processed")
    pack = with_waivers(node.pack, Waiver("SOV-04", "*", "o", "j", date(2027, 1, 1)))
    assert node.run("SOV-04", pack=pack).outcome == Outcome.ERROR


def test_severity_override_changes_the_result_severity(node: NodeEvidence) -> None:
    pack = dataclasses.replace(node.pack, severity_overrides={"SEC-06": "critical"})
    assert node.run("SEC-06", pack=pack).severity == Severity.CRITICAL
    assert node.run("SEC-06").severity == Severity.MEDIUM


# ---- registry -----------------------------------------------------------------------------------

def test_registering_a_duplicate_id_is_an_error() -> None:
    with pytest.raises(DuplicateControl, match="SEC-04 is registered twice"):
        control(id="SEC-04", pillar=Pillar.CONTROLS, severity=Severity.LOW, title="t", rationale="r",
                remediation="x", frameworks={}, reads=[])(lambda ctx: [])


def test_every_control_has_metadata_frameworks_and_reads() -> None:
    for registered in all_controls():
        meta = registered.meta
        assert meta.rationale and meta.remediation and meta.reads, meta.id
        assert {"NIST-800-53", "ISO27001-2022", "GDPR"} <= set(meta.frameworks), meta.id
    assert get("SEC-04").meta.needs_job and get("SOV-02").meta.probe


def test_each_control_records_the_seconds_its_judgement_took(node: NodeEvidence) -> None:
    def slow(ctx: ControlContext) -> Iterator[Finding]:
        time.sleep(0.05)
        yield Finding.ok("r", "fine")

    slow_result, quick_result = evaluate(node.context(), [fake_control(slow), fake_control(lambda ctx: [])])
    assert slow_result.duration_seconds is not None and 0.05 <= slow_result.duration_seconds < 5
    assert quick_result.duration_seconds is not None and quick_result.duration_seconds < slow_result.duration_seconds
    assert slow_result.to_json()["duration_seconds"] == slow_result.duration_seconds
    # A result without the field (older result.json) reads back as "not measured" and writes no field.
    legacy = {k: v for k, v in slow_result.to_json().items() if k != "duration_seconds"}
    assert ControlResult.from_json(legacy).duration_seconds is None and "duration_seconds" not in \
        ControlResult.from_json(legacy).to_json()


# ---- result.json --------------------------------------------------------------------------------

def run_result(node: NodeEvidence) -> RunResult:
    ctx = node.context()
    return RunResult(
        run_id="20261126T161800Z-3f9a1c", target="http://127.0.0.1:8080", project="fed-node-us",
        policy_name="us-node", policy_path="policies/us-node.yaml", policy_sha256=node.pack.sha256,
        tool_version="0.1.0", principal="anonymous", started_at=datetime(2026, 11, 26, 16, 18, tzinfo=UTC),
        finished_at=datetime(2026, 11, 26, 16, 18, 4, tzinfo=UTC), scope=ctx.scope,
        controls=tuple(evaluate(ctx)), probes=tuple(probe_records(ctx)))


def test_result_json_has_the_contract_shape_and_round_trips(node: NodeEvidence) -> None:
    result = run_result(node)
    data = json.loads(json.dumps(result.to_json()))
    assert list(data) == ["schema", "run_id", "verdict", "exit_code", "target", "project", "policy", "tool",
                          "principal", "started_at", "finished_at", "scope", "summary", "controls", "probes"]
    # SOV-09 and CC-05 are NOT_APPLICABLE: the us pack names no workload and leaves in-guest attestation off.
    assert data["verdict"] == "PASS" and data["exit_code"] == 0 and data["summary"]["PASS"] == len(all_controls()) - 2
    assert data["summary"]["NOT_APPLICABLE"] == 2
    assert data["started_at"] == "2026-11-26T16:18:00Z"
    assert data["scope"]["window"] == {"start": "2026-11-26T15:00:00Z", "end": "2026-11-26T16:00:00Z"}
    control_json = data["controls"][0]
    assert set(control_json) == {"id", "title", "pillar", "severity", "outcome", "rationale", "remediation",
                                 "frameworks", "findings", "evidence", "waiver", "duration_seconds"}
    assert all(isinstance(c["duration_seconds"], float) and c["duration_seconds"] >= 0 for c in data["controls"])
    assert set(control_json["findings"][0]) == {"outcome", "resource", "message", "evidence"}
    assert len(data["probes"]) == 6 and all(p["refused"] and p["cleanup"] == "not needed" for p in data["probes"])
    assert RunResult.from_json(data).to_json() == data


@pytest.mark.parametrize(("outcomes", "verdict", "code"), [
    ({Outcome.PASS}, "PASS", 0),
    ({Outcome.PASS, Outcome.WAIVED, Outcome.NOT_APPLICABLE}, "WARNED", 0),
    ({Outcome.PASS, Outcome.SKIPPED}, "WARNED", 0),
    ({Outcome.PASS, Outcome.SKIPPED, Outcome.ERROR}, "INCOMPLETE", 3),
    ({Outcome.PASS, Outcome.ERROR, Outcome.FAIL}, "FAIL", 1),
    ({Outcome.PASS, Outcome.ERROR}, "INCOMPLETE", 3),
])
def test_verdict_and_exit_code(node: NodeEvidence, outcomes: set[Outcome], verdict: str, code: int) -> None:
    base = run_result(node)
    controls = tuple(dataclasses.replace(c, outcome=o) for c, o in zip(base.controls, sorted(outcomes), strict=False))
    result = dataclasses.replace(base, controls=controls)
    assert (result.verdict, result.exit_code) == (verdict, code)


def test_a_run_without_controls_is_incomplete(node: NodeEvidence) -> None:
    assert dataclasses.replace(run_result(node), controls=()).exit_code == 3


def test_every_purpose_a_control_reads_names_its_api() -> None:
    from sovaudit.audit.views import PURPOSE_API

    for registered in all_controls():
        for purpose in registered.meta.reads:
            assert purpose.split(":", 1)[0] in PURPOSE_API, (registered.meta.id, purpose)


def test_controls_list_prints_the_catalogue_as_table_and_json() -> None:
    from click.testing import CliRunner

    from sovaudit.audit.catalog_commands import controls

    runner = CliRunner()
    table = runner.invoke(controls, ["list"])
    assert table.exit_code == 0 and "SEC-04" in table.output and "INT-01" in table.output
    assert "frameworks" in table.output and "GDPR" in table.output and "NIST-800-53" in table.output
    listed = json.loads(runner.invoke(controls, ["list", "--json"]).output)
    assert [c["id"] for c in listed][:3] == ["SOV-01", "SOV-02", "SOV-03"] and len(listed) == len(all_controls())
    sec04 = next(c for c in listed if c["id"] == "SEC-04")
    assert sec04["reads"][:2] == ["logging.data_writes", "resourcemanager.iam_policy"] and sec04["needs_job"]
    assert sec04["frameworks"]["GDPR"] == ["Art. 44", "Art. 32"]


def _read_purposes() -> list[tuple[str, str]]:
    node = NodeEvidence(resolve_policy("us"))
    pairs = []
    for registered in all_controls():
        for pattern in registered.meta.reads:
            prefix = pattern.split("<", 1)[0]
            pairs += [(registered.meta.id, p) for p in node.answers if p == pattern or (prefix != pattern and
                                                                                          p.startswith(prefix))]
    # Each key is read by the control of the resource it encrypts: the buckets' by SOV-04, bq's by SOV-05.
    return [(c, p) for c, p in pairs if not (p.startswith("kms.key:") and (c == "SOV-04") == p.endswith("/bq"))]


# Reads a control only needs when no VM of the run is left (Batch deletes them when the job ends):
# the 503 must then make it ERROR, so those cases start from an empty VM listing.
VM_FALLBACK_READS = {("CC-02", "logging.instance_inserts"), ("CC-05", "logging.instance_inserts"), ("SEC-02", "logging.instance_inserts"),
                     ("SEC-03", "logging.instance_inserts"), ("SOV-06", "logging.instance_inserts"),
                     # the window's changes to the run's VMs: their insert body is all else there is
                     ("CC-02", "logging.network_changes"), ("SEC-02", "logging.network_changes"),
                     ("SEC-03", "logging.network_changes")}


# CC-04 reads the log routing only for a VM without a launch report (could the routing have dropped
# it?): those cases start from a log without the reports.
LAUNCH_GAP_READS = {("CC-04", p) for p in ("logging.sinks", "logging.exclusions", "logging.buckets",
                                           "logging.config_changes")}


@pytest.mark.parametrize(("control_id", "purpose"), _read_purposes())
def test_a_503_on_any_purpose_a_control_reads_makes_it_error_never_pass(control_id: str, purpose: str) -> None:
    pack = resolve_policy("us")
    if control_id == "SOV-09":   # it reads nothing unless the pack names a workload
        pack = dataclasses.replace(pack, assured_workload="organizations/161803398874/locations/us-central1/"
                                                          "workloads/genomics-sovereign")
    if control_id == "CC-05":   # off in the us pack, where it reads nothing
        pack = dataclasses.replace(pack, confidential=dataclasses.replace(pack.confidential,
                                                                          in_guest_attestation=InGuestAttestation(True)))
    node = NodeEvidence(pack)
    if (control_id, purpose) in VM_FALLBACK_READS:
        node.set("compute.job_instances", {"kind": "compute#instanceAggregatedList", "items": {}})
    if (control_id, purpose) in LAUNCH_GAP_READS:
        inserts = node.body("logging.instance_inserts")
        inserts["entries"] = [e for e in inserts["entries"] if "jsonPayload" not in e]
    node.set(purpose, {"error": {"code": 503, "message": "The service is currently unavailable.",
                                 "status": "UNAVAILABLE"}}, status=503)
    result = node.run(control_id)
    assert result.outcome == Outcome.ERROR, [f.message for f in result.findings]


def test_a_waived_result_round_trips_with_its_waiver(node: NodeEvidence) -> None:
    public_bucket(node)
    pack = with_waivers(node.pack, Waiver("SOV-04", "*", "sec@example.org", "migration", date(2027, 3, 31)))
    result = node.run("SOV-04", pack=pack)
    data = json.loads(json.dumps(result.to_json()))
    assert data["outcome"] == "WAIVED" and data["waiver"] == {
        "control": "SOV-04", "resource": "*", "owner": "sec@example.org", "justification": "migration",
        "expires": "2027-03-31"}
    from sovaudit.audit.models import ControlResult

    assert ControlResult.from_json(data).to_json() == data


def test_scope_from_json_keeps_probe_flag_and_reasons_when_given() -> None:
    scope = Scope.from_json({"job": None, "posture_only": True, "probes_enabled": False, "reasons": ["x"],
                             "window": {"start": None, "end": None}})
    assert (scope.posture_only, scope.probes_enabled, scope.reasons) == (True, False, ("x",))
