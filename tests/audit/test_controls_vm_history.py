"""The run's VMs over time (audit/vm_history.py): SEC-02, SEC-03, CC-02 and CC-03 on the window's
instance mutations, and SEC-09 leaving the run's own VMs to SEC-02."""

from __future__ import annotations

from typing import Any

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import resolve_policy

ACTIVITY = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Factivity"
WHO = "insider@example.org"
WHEN = "2026-11-26T15:30:00Z"


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def run_vms(node: NodeEvidence) -> list[dict[str, Any]]:
    return [vm for s in node.body("compute.job_instances")["items"].values() for vm in s.get("instances", [])]


def resource(vm: dict[str, Any]) -> str:
    return "projects/" + vm["selfLink"].split("/projects/", 1)[1]


def mutation(verb: str, target: str, request: dict[str, Any] | None = None, *, last: bool = False,
             status: dict[str, Any] | None = None, when: str = WHEN) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "authenticationInfo": {"principalEmail": WHO},
        "serviceName": "compute.googleapis.com", "methodName": f"v1.compute.instances.{verb}", "resourceName": target,
        "request": {"@type": f"type.googleapis.com/compute.instances.{verb}", **({} if last else request or {})}}
    if status:
        payload["status"] = status
    return {"logName": ACTIVITY, "timestamp": when, "insertId": f"{verb}-{len(target)}-{last}",
            "resource": {"type": "gce_instance", "labels": {}}, "protoPayload": payload,
            "operation": {"id": "op", "producer": "compute.googleapis.com", **({"last": True} if last else
                                                                               {"first": True})}}


def changes(node: NodeEvidence, *entries: dict[str, Any]) -> None:
    node.set("logging.network_changes", {"entries": list(entries)})


def gone(node: NodeEvidence) -> None:
    node.set("compute.job_instances", {"kind": "compute#instanceAggregatedList", "items": {}})


def messages(result: Any, outcome: Outcome = Outcome.FAIL) -> list[str]:
    return [f.message for f in result.findings if f.outcome == outcome]


# ---- SEC-02 --------------------------------------------------------------------------------------

def test_sec02_fails_for_an_address_added_to_a_worker_batch_has_since_deleted(node: NodeEvidence) -> None:
    vm = run_vms(node)[1]
    changes(node, mutation("addAccessConfig", resource(vm), {"type": "ONE_TO_ONE_NAT", "name": "External NAT"}),
            mutation("addAccessConfig", resource(vm), last=True))
    gone(node)
    result = node.run("SEC-02")
    assert result.outcome == Outcome.FAIL
    assert messages(result) == [f"{WHO} at {WHEN} (v1.compute.instances.addAccessConfig) gave {vm['name']} an "
                                "external address (External NAT) during the run; the VM has since been deleted"]


def test_sec02_fails_for_an_address_removed_before_the_audit(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("deleteAccessConfig", resource(vm)))
    result = node.run("SEC-02")
    assert result.outcome == Outcome.FAIL and "had an external address until then" in messages(result)[0]


def test_sec02_judges_update_network_interface_by_its_fields(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("updateNetworkInterface", resource(vm), {"stackType": "IPV4_ONLY", "fingerprint": "x"}))
    assert node.run("SEC-02").outcome == Outcome.PASS   # no address, same network: nothing to judge
    changes(node, mutation("updateNetworkInterface", resource(vm), {
        "ipv6AccessConfigs": [{"type": "DIRECT_IPV6", "name": "v6"}]}))
    assert "an external address (v6)" in messages(node.run("SEC-02"))[0]
    changes(node, mutation("updateNetworkInterface", resource(vm), {
        "network": "projects/fed-node-us/global/networks/default"}))
    assert "to network projects/fed-node-us/global/networks/default, outside the node network" in \
        messages(node.run("SEC-02"))[0]


def test_sec02_ignores_refused_calls_last_entries_and_other_vms(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("addAccessConfig", resource(vm), {"type": "ONE_TO_ONE_NAT"},
                           status={"code": 7, "message": "denied"}),
            mutation("addAccessConfig", resource(vm), last=True),
            mutation("addAccessConfig", "projects/fed-node-us/zones/us-central1-b/instances/ops-bastion",
                     {"type": "ONE_TO_ONE_NAT"}))
    assert node.run("SEC-02").outcome == Outcome.PASS


def test_sec02_is_error_when_the_history_of_deleted_vms_cannot_be_read(node: NodeEvidence) -> None:
    node.set("logging.network_changes", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    assert node.run("SEC-02").outcome == Outcome.PASS   # listed VMs are judged on their live state
    gone(node)
    result = node.run("SEC-02")
    assert result.outcome == Outcome.ERROR
    assert "no longer exist" in messages(result, Outcome.ERROR)[0]


# ---- SEC-03 --------------------------------------------------------------------------------------

def test_sec03_fails_for_a_worker_run_as_another_identity_for_a_while(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    expected = node.pack.service_account
    changes(node, mutation("setServiceAccount", resource(vm), {"email": "default"}),
            mutation("setServiceAccount", resource(vm), {"email": expected}, when="2026-11-26T15:40:00Z"))
    result = node.run("SEC-03")
    assert result.outcome == Outcome.FAIL
    failed = messages(result)
    assert len(failed) == 1 and "(the default compute service account)" in failed[0] and WHO in failed[0]
    assert any("set" in m and expected in m for m in messages(result, Outcome.PASS))


def test_sec03_reads_service_accounts_in_an_update(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("update", resource(vm), {"serviceAccounts": [{"email": "x@p.iam.gserviceaccount.com"}],
                                                     "confidentialInstanceConfig": {
                                                         "enableConfidentialCompute": True}}))
    assert "run as x@p.iam.gserviceaccount.com" in messages(node.run("SEC-03"))[0]


# ---- CC-02 ---------------------------------------------------------------------------------------

def test_cc02_fails_for_a_machine_type_swapped_and_back(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("setMachineType", resource(vm), {"machineType": "zones/us-central1-a/machineTypes/"
                                                                           "n2-standard-4"}),
            mutation("setMachineType", resource(vm), {"machineType": "zones/us-central1-a/machineTypes/"
                                                                     "n2d-standard-4"}))
    failed = messages(node.run("CC-02"))
    assert len(failed) == 1 and "n2-standard-4 is not in a series that supports SEV" in failed[0]


@pytest.mark.parametrize(("request_body", "fails"), [
    ({"confidentialInstanceConfig": {"enableConfidentialCompute": False}}, "switched confidential compute off"),
    ({"labels": {"a": "b"}}, "carries no confidentialInstanceConfig"),
    ({"confidentialInstanceConfig": {"enableConfidentialCompute": True, "confidentialInstanceType": "TDX"}},
     "confidential type TDX"),
    ({"confidentialInstanceConfig": {"enableConfidentialCompute": True}}, None),
])
def test_cc02_judges_an_update_as_the_whole_instance(node: NodeEvidence, request_body: dict[str, Any],
                                                      fails: str | None) -> None:
    vm = run_vms(node)[0]
    labels = {"labels": vm["labels"]} if "labels" not in request_body else {}
    changes(node, mutation("update", resource(vm), {**labels, **request_body}))
    result = node.run("CC-02")
    if fails is None:
        assert result.outcome == Outcome.PASS
    else:
        assert fails in messages(result)[0]


# ---- CC-03: the scope ----------------------------------------------------------------------------

def test_cc03_fails_for_a_relabel_out_of_the_job_and_keeps_the_vm_in_the_run(node: NodeEvidence) -> None:
    vm = run_vms(node)[1]
    changes(node, mutation("setLabels", resource(vm), {"labels": {"env": "scratch"}, "labelFingerprint": "x"}))
    # The VM left the label-filtered listing; the project's unfiltered listing still shows it.
    listing = node.body("compute.job_instances")["items"]
    for scoped in listing.values():
        scoped["instances"] = [v for v in scoped.get("instances", []) if v["name"] != vm["name"]]
    moved = {**vm, "labels": {"env": "scratch"}}
    zone = vm["zone"].rsplit("/", 1)[-1]
    node.body("compute.project_instances")["items"].setdefault(f"zones/{zone}", {}).setdefault(
        "instances", []).append(moved)
    result = node.run("CC-03")
    assert result.outcome == Outcome.FAIL
    failed = messages(result)
    assert len(failed) == 1 and "removed its batch-job-uid label" in failed[0] and vm["name"] in failed[0]
    assert any("2 VM inserts logged for 2 VMs found" in m for m in messages(result, Outcome.PASS))
    sec02 = node.run("SEC-02")
    assert any(vm["name"] in m and "no longer labelled with the job's uid" in m
               for m in messages(sec02, Outcome.PASS))


def test_cc03_accepts_a_relabel_that_keeps_the_job_uid(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("setLabels", resource(vm), {"labels": {**vm["labels"], "cost-center": "42"}}))
    assert node.run("CC-03").outcome == Outcome.PASS


def test_cc03_fails_for_a_relabel_to_another_job_and_errors_on_a_change_nobody_judges(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("setLabels", resource(vm), {"labels": {**vm["labels"], "batch-job-uid": "other"}}),
            mutation("setMetadata", resource(vm), {"items": [{"key": "startup-script", "value": "curl ..."}]}))
    result = node.run("CC-03")
    assert "set batch-job-uid to 'other'" in messages(result)[0]
    assert "in a way no control judges" in messages(result, Outcome.ERROR)[0]
    changes(node, mutation("stop", resource(vm)), mutation("start", resource(vm)))
    assert node.run("CC-03").outcome == Outcome.PASS


# ---- SEC-09 leaves the run's VMs to SEC-02 ---------------------------------------------------------

def test_sec09_judges_other_vms_address_changes_but_not_the_runs(node: NodeEvidence) -> None:
    vm = run_vms(node)[0]
    changes(node, mutation("addAccessConfig", resource(vm), {"type": "ONE_TO_ONE_NAT"}),
            mutation("setLabels", resource(vm), {"labels": vm["labels"]}))
    assert node.run("SEC-09").outcome == Outcome.PASS
    assert node.run("SEC-02").outcome == Outcome.FAIL
    changes(node, mutation("addAccessConfig", "projects/fed-node-us/zones/us-central1-a/instances/tmp",
                           {"type": "ONE_TO_ONE_NAT"}))
    assert node.run("SEC-09").outcome == Outcome.FAIL


def test_a_same_name_vm_recreated_after_the_run_s_one_does_not_replace_its_insert(node: NodeEvidence) -> None:
    """The run's VM (inserted with an external address) was deleted and another VM, without the job's label,
    now carries its zone and name: that one has another id and is not the run's; the insert is still judged."""
    vm = run_vms(node)[1]
    insert = next(e for e in node.body("logging.instance_inserts")["entries"]
                  if e["protoPayload"]["request"].get("name") == vm["name"])
    insert["protoPayload"]["request"]["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT",
                                                                                   "name": "External NAT"}]
    listing = node.body("compute.job_instances")["items"]
    for scoped in listing.values():
        scoped["instances"] = [v for v in scoped.get("instances", []) if v["name"] != vm["name"]]
    impostor = {**vm, "id": "999", "labels": {"env": "scratch"}}
    zone = vm["zone"].rsplit("/", 1)[-1]
    node.body("compute.project_instances")["items"].setdefault(f"zones/{zone}", {}).setdefault(
        "instances", []).append(impostor)
    failed = messages(node.run("SEC-02"))
    assert failed == [f"{vm['name']} has an external address (External NAT) (from its compute.instances.insert "
                      "audit entry: the VM no longer exists)"]
