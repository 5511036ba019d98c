"""The Shielded VM integrity log: the simulator writes Google's launch attestation report when a
Confidential VM boots (seeded workers, instances.insert, instances.start), and nothing SEV for others."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1
from google.cloud import logging as cloud_logging

from sovaudit import cloud
from sovaudit.simulator import clock
from sovaudit.simulator.server import SimServer

LOG = "compute.googleapis.com%2Fshielded_vm_integrity"


def integrity_entries(sim: SimServer) -> list[dict[str, Any]]:
    return [e for e in sim.state.log_entries if e.get("logName", "").endswith(f"/logs/{LOG}")]


def launch_reports(sim: SimServer) -> dict[str, dict[str, Any]]:
    """instance id -> the launch report entry (first boot)."""
    return {e["resource"]["labels"]["instance_id"]: e for e in integrity_entries(sim)
            if "sevLaunchAttestationReportEvent" in e["jsonPayload"] and e["jsonPayload"]["bootCounter"] == "0"}


def seeded_vms(sim: SimServer) -> list[dict[str, Any]]:
    uid = sim.state.extras["seed"].job_uid
    return [vm for vm in sim.state.instances.values() if vm.get("labels", {}).get("batch-job-uid") == uid]


def test_every_seeded_worker_has_one_launch_report_in_googles_shape(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(job_tasks=4)
    reports = launch_reports(sim)
    vms = seeded_vms(sim)
    assert sorted(reports) == sorted(vm["id"] for vm in vms)
    for vm in vms:
        entry = reports[vm["id"]]
        assert entry["logName"] == f"projects/fed-node-us/logs/{LOG}" and "protoPayload" not in entry
        assert entry["severity"] == "NOTICE" and entry["resource"] == {"type": "gce_instance", "labels": {
            "instance_id": vm["id"], "project_id": "fed-node-us", "zone": vm["zone"].rsplit("/", 1)[1]}}
        payload = entry["jsonPayload"]
        assert payload["@type"] == "type.googleapis.com/cloud_integrity.IntegrityEvent"
        event = payload["sevLaunchAttestationReportEvent"]
        assert event["integrityEvaluationPassed"] is True
        assert event["sevPolicy"]["debugEnabled"] is False and event["sevPolicy"]["keySharingAllowed"] is False
        assert entry["receiveTimestamp"] > entry["timestamp"]
    # Shielded VM boot reports use policyEvaluationPassed, not integrityEvaluationPassed
    early = [e for e in integrity_entries(sim) if "earlyBootReportEvent" in e["jsonPayload"]]
    assert len(early) == len(vms) and early[0]["jsonPayload"]["earlyBootReportEvent"] == {"policyEvaluationPassed": True}


def test_a_vm_without_confidential_compute_gets_no_launch_report(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["vm-not-confidential"])
    plain = [vm for vm in seeded_vms(sim) if "confidentialInstanceConfig" not in vm]
    assert len(plain) == 1
    assert plain[0]["id"] not in launch_reports(sim)
    assert len(launch_reports(sim)) == len(seeded_vms(sim)) - 1


def test_scenarios_stage_what_the_hardware_reported(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["attestation-debug-enabled"])
    reports = launch_reports(sim)
    debug = [e for e in reports.values()
             if e["jsonPayload"]["sevLaunchAttestationReportEvent"]["sevPolicy"]["debugEnabled"]]
    assert len(debug) == 1 and "-group0-2-" in next(
        vm["name"] for vm in seeded_vms(sim) if vm["id"] == debug[0]["resource"]["labels"]["instance_id"])
    missing = sim_factory(scenarios=["attestation-missing"])
    assert len(launch_reports(missing)) == len(seeded_vms(missing)) - 1


def test_an_exclusion_of_the_integrity_log_keeps_the_reports_out_of_the_log(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["attestation-log-excluded"])
    assert launch_reports(sim) == {}
    assert [e for e in integrity_entries(sim) if "earlyBootReportEvent" in e["jsonPayload"]]   # only those dropped


def test_insert_and_start_through_compute_write_a_report_per_boot(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(job_tasks=1)
    client = compute_v1.InstancesClient(transport="rest", client_options={"api_endpoint": sim.url},
                                        credentials=AnonymousCredentials())
    zone = "us-central1-a"
    body = compute_v1.Instance(
        name="att-vm", machine_type=f"zones/{zone}/machineTypes/n2d-standard-4",
        network_interfaces=[compute_v1.NetworkInterface(
            network="projects/fed-node-us/global/networks/fed-node-us-multiomics-vpc")],
        confidential_instance_config=compute_v1.ConfidentialInstanceConfig(enable_confidential_compute=True))
    client.insert(project="fed-node-us", zone=zone, instance_resource=body).result()
    client.stop(project="fed-node-us", zone=zone, instance="att-vm").result()
    client.start(project="fed-node-us", zone=zone, instance="att-vm").result()
    vm_id = str(client.get(project="fed-node-us", zone=zone, instance="att-vm").id)
    logging_client = cloud.logging(cloud.Target.parse(sim.url), "fed-node-us")
    listed = [e.to_api_repr() for e in logging_client.list_entries(
        resource_names=["projects/fed-node-us"], order_by=cloud_logging.ASCENDING,
        filter_=f'logName="projects/fed-node-us/logs/{LOG}" AND resource.labels.instance_id="{vm_id}" '
                'AND jsonPayload.sevLaunchAttestationReportEvent:* AND timestamp>="2000-01-01T00:00:00Z"')]
    assert [e["jsonPayload"]["bootCounter"] for e in listed] == ["0", "1"]


def test_entries_write_stamps_the_receive_time_not_the_claimed_one(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["attestation-forged-after-run"])
    lag = {vm_id: clock.parse(e["receiveTimestamp"]) - clock.parse(e["timestamp"])
           for vm_id, e in launch_reports(sim).items()}
    forged = [vm_id for vm_id, late in lag.items() if late > timedelta(minutes=30)]
    assert len(forged) == 1 and all(late < timedelta(seconds=5) for v, late in lag.items() if v not in forged)
    # the claimed time is the VM's boot (Compute's -08:00 timestamp, normalized to UTC), ~80 minutes earlier
    vm = next(vm for vm in seeded_vms(sim) if vm["id"] == forged[0])
    assert clock.parse(launch_reports(sim)[forged[0]]["timestamp"]) == clock.parse(vm["lastStartTimestamp"])


def test_clock_parse_keeps_an_offset_after_a_fraction() -> None:
    assert clock.parse("2026-12-07T03:48:09.737-08:00") == clock.parse("2026-12-07T11:48:09.737Z")
    assert clock.parse("2026-12-07T03:48:09.123456789Z").microsecond == 123456
