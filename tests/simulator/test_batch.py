"""Cloud Batch v1 in the simulator, through the official `google.cloud.batch_v1` REST client.

Tests share one node per module (`sim_shared`) and keep apart by job ids; refusal mode and
custom runners get their own node (`sim_factory`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import batch_v1, compute_v1
from google.cloud import logging as cloud_logging

from sovaudit.simulator.batch_runner import TaskInvocation, TaskOutcome
from sovaudit.simulator.server import SimServer

PROJECT = "fed-node-us"
NUMBER = "314159265358"
REGION = "us-central1"
TEMPLATE = f"projects/{PROJECT}/global/instanceTemplates/sev-n2d-batch"
SA = "batch-runner@fed-node-us.iam.gserviceaccount.com"


def _batch(sim: SimServer) -> batch_v1.BatchServiceClient:
    return batch_v1.BatchServiceClient(transport="rest", client_options={"api_endpoint": sim.url},
                                       credentials=AnonymousCredentials())


def _instances(sim: SimServer) -> compute_v1.InstancesClient:
    return compute_v1.InstancesClient(transport="rest", client_options={"api_endpoint": sim.url},
                                      credentials=AnonymousCredentials())


def _job(*, tasks: int = 3, parallelism: int = 2, region: str = REGION, template: bool = True,
         script: str = "echo hello", max_retries: int = 0, external_ip: bool = False,
         allowed: list[str] | None = None) -> batch_v1.Job:
    runnable = batch_v1.Runnable(script=batch_v1.Runnable.Script(text=script))
    spec = batch_v1.TaskSpec(runnables=[runnable], max_retry_count=max_retries,
                             environment=batch_v1.Environment(variables={"OUTPUT": "gs://fed-node-us-processed"}))
    group = batch_v1.TaskGroup(task_count=tasks, parallelism=parallelism, task_spec=spec)
    if template:
        instances = [batch_v1.AllocationPolicy.InstancePolicyOrTemplate(instance_template=TEMPLATE)]
        network = None
    else:
        instances = [batch_v1.AllocationPolicy.InstancePolicyOrTemplate(policy=batch_v1.AllocationPolicy.InstancePolicy(
            machine_type="n2d-standard-4", provisioning_model=batch_v1.AllocationPolicy.ProvisioningModel.SPOT))]
        network = batch_v1.AllocationPolicy.NetworkPolicy(network_interfaces=[
            batch_v1.AllocationPolicy.NetworkInterface(
                network=f"projects/{PROJECT}/global/networks/fed-node-us-multiomics-vpc",
                subnetwork=f"projects/{PROJECT}/regions/{region}/subnetworks/fed-node-us-compute-subnet",
                no_external_ip_address=not external_ip)])
    policy = batch_v1.AllocationPolicy(
        location=batch_v1.AllocationPolicy.LocationPolicy(allowed_locations=allowed or [f"regions/{region}"]),
        instances=instances, service_account=batch_v1.ServiceAccount(email=SA),
        labels={"pipeline": "genomics-preproc"})
    if network is not None:
        policy.network = network
    return batch_v1.Job(task_groups=[group], allocation_policy=policy, labels={"run": "test"},
                        logs_policy=batch_v1.LogsPolicy(destination=batch_v1.LogsPolicy.Destination.CLOUD_LOGGING))


def _wait(client: batch_v1.BatchServiceClient, name: str, *, timeout: float = 10.0) -> batch_v1.Job:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(name=name)
        if job.status.state in {batch_v1.JobStatus.State.SUCCEEDED, batch_v1.JobStatus.State.FAILED,
                                batch_v1.JobStatus.State.CANCELLED}:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job.status.state.name}"
        time.sleep(0.05)


def _vms(sim: SimServer, uid: str) -> list[compute_v1.Instance]:
    found = []
    for _scope, scoped in _instances(sim).aggregated_list(
            request={"project": PROJECT, "filter": f'labels.batch-job-uid = "{uid}"'}):
        found.extend(scoped.instances)
    return found


def test_job_runs_queued_scheduled_running_succeeded_with_status_events(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    created = client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}", job=_job(), job_id="lifecycle-1")
    # The name echoes the project as the caller spelled it; group names and events use the number.
    assert created.name == f"projects/{PROJECT}/locations/{REGION}/jobs/lifecycle-1"
    name = f"projects/{NUMBER}/locations/{REGION}/jobs/lifecycle-1"
    assert created.status.state == batch_v1.JobStatus.State.QUEUED
    assert created.task_groups[0].name == f"{name}/taskGroups/group0"
    assert list(created.allocation_policy.location.allowed_locations) == [f"regions/{REGION}"]
    assert re.fullmatch(r"lifecycle-1-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{5}", created.uid)

    job = _wait(client, created.name)
    assert job.status.state == batch_v1.JobStatus.State.SUCCEEDED
    described = [e.description for e in job.status.status_events if e.type_ == "STATUS_CHANGED"]
    assert described == [f"Job state is set from {a} to {b} for job {name}."
                         for a, b in [("QUEUED", "SCHEDULED"), ("SCHEDULED", "RUNNING"), ("RUNNING", "SUCCEEDED")]]
    assert dict(job.status.task_groups["group0"].counts) == {"SUCCEEDED": 3}
    assert job.status.run_duration.total_seconds() > 0
    assert client.get_job(name=f"projects/{PROJECT}/locations/{REGION}/jobs/lifecycle-1").uid == job.uid


def test_job_vms_come_from_the_template_with_batch_labels_and_confidential_compute(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    job = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}", job=_job(),
                                          job_id="from-template").name)
    vms = _vms(sim, job.uid)
    assert len(vms) == 2  # parallelism 2, one task per VM
    for vm in vms:
        assert re.fullmatch(rf"{re.escape(job.uid)}-group0-\d+-[a-z0-9]{{4}}", vm.name)
        assert vm.zone.rsplit("/", 1)[-1].startswith(f"{REGION}-")
        assert vm.labels["batch-job-id"] == "from-template" and vm.labels["batch-node"] == ""
        assert vm.labels["pipeline"] == "genomics-preproc"
        assert vm.confidential_instance_config.enable_confidential_compute is True
        assert vm.confidential_instance_config.confidential_instance_type == "SEV"
        assert not vm.network_interfaces[0].access_configs
        assert vm.service_accounts[0].email == SA
    logging_client = cloud_logging.Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                                          client_options={"api_endpoint": sim.url})
    entries = list(logging_client.list_entries(filter_=(
        'log_id("cloudaudit.googleapis.com/activity") AND protoPayload.methodName="v1.compute.instances.insert" '
        f'AND operation.first=true AND protoPayload.request.labels.batch-job-uid="{job.uid}" '
        'AND timestamp>="2020-01-01T00:00:00Z"')))
    assert len(entries) == 2
    for entry in entries:
        payload = entry.payload
        assert payload["authenticationInfo"]["principalEmail"] == f"{NUMBER}@cloudservices.gserviceaccount.com"
        assert payload["request"]["links"][0]["type"] == "MEMBER_OF"
        assert "/instanceGroupManagers/" in payload["request"]["links"][0]["source"]
        assert payload["request"]["confidentialInstanceConfig"]["enableConfidentialCompute"] is True
    # Each Confidential VM Batch created booted and got Google's launch attestation report (CC-04).
    ids = " OR ".join(f'resource.labels.instance_id="{vm.id}"' for vm in vms)
    reports = list(logging_client.list_entries(filter_=(
        f'logName="projects/{PROJECT}/logs/compute.googleapis.com%2Fshielded_vm_integrity" AND ({ids}) '
        'AND jsonPayload.sevLaunchAttestationReportEvent:* AND timestamp>="2020-01-01T00:00:00Z"')))
    assert sorted(r.resource.labels["instance_id"] for r in reports) == sorted(str(vm.id) for vm in vms)
    assert all(r.payload["sevLaunchAttestationReportEvent"]["integrityEvaluationPassed"] is True for r in reports)


def test_policy_job_without_no_external_ip_gets_access_configs_and_is_not_confidential(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    job = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}",
                                          job=_job(template=False, external_ip=True), job_id="public-ip").name)
    vms = _vms(sim, job.uid)
    assert vms
    for vm in vms:
        config = vm.network_interfaces[0].access_configs[0]
        assert config.type_ == "ONE_TO_ONE_NAT" and config.nat_i_p
        assert not vm.confidential_instance_config.enable_confidential_compute
        assert vm.scheduling.provisioning_model == "SPOT"


def test_policy_job_with_no_external_ip_has_no_access_config(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    job = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}",
                                          job=_job(template=False, tasks=1), job_id="private-ip").name)
    assert [vm.network_interfaces[0].access_configs for vm in _vms(sim, job.uid)] == [[]]


def test_job_in_a_disallowed_region_is_refused_with_a_precondition_failure(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    with pytest.raises(exceptions.BadRequest) as refused:
        client.create_job(parent=f"projects/{PROJECT}/locations/europe-west4",
                          job=_job(region="europe-west4"), job_id="probe-eu")
    assert "constraints/gcp.resourceLocations" in refused.value.message
    assert refused.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    # Over REST, api-core keeps the details as the JSON it received.
    failures = [d for d in refused.value.details if d["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure"]
    assert failures and failures[0]["violations"][0]["type"] == "constraints/gcp.resourceLocations"
    with pytest.raises(exceptions.NotFound):
        client.get_job(name=f"projects/{PROJECT}/locations/europe-west4/jobs/probe-eu")


def test_refusal_mode_fail_accepts_then_fails_citing_the_constraint_without_vms(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(batch_refusal="fail")
    client = _batch(sim)
    created = client.create_job(parent=f"projects/{PROJECT}/locations/europe-west4",
                                job=_job(region="europe-west4"), job_id="probe-eu")
    job = _wait(client, created.name)
    assert job.status.state == batch_v1.JobStatus.State.FAILED
    errors = [e.description for e in job.status.status_events if "Batch Error" in e.description]
    assert errors and "code - CODE_GCE_" in errors[0]
    assert "violates constraint constraints/gcp.resourceLocations" in errors[0]
    assert job.status.status_events[-1].description.startswith(
        "Job state is set from SCHEDULED to FAILED for job projects/314159265358/locations/europe-west4/jobs/probe-eu.")
    assert _vms(sim, job.uid) == []


def test_allowed_locations_spanning_two_regions_is_invalid(sim_shared: SimServer) -> None:
    sim = sim_shared
    with pytest.raises(exceptions.BadRequest, match="more than one regions"):
        _batch(sim).create_job(parent=f"projects/{PROJECT}/locations/{REGION}",
                               job=_job(allowed=["regions/us-central1", "zones/us-east1-b"]), job_id="two-regions")


def test_job_ids_are_validated_and_unique(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    parent = f"projects/{PROJECT}/locations/{REGION}"
    with pytest.raises(exceptions.BadRequest, match="job_id|Job id"):
        client.create_job(parent=parent, job=_job(), job_id="Bad_ID")
    client.create_job(parent=parent, job=_job(tasks=1), job_id="once")
    with pytest.raises(exceptions.Conflict):
        client.create_job(parent=parent, job=_job(tasks=1), job_id="once")
    generated = client.create_job(parent=parent, job=_job(tasks=1))
    assert re.fullmatch(r"j-[0-9a-f-]{36}", generated.name.rsplit("/", 1)[-1])


def test_failing_task_is_retried_then_fails_the_job_with_the_task_event(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    job = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}",
                                          job=_job(tasks=1, parallelism=1, script="exit 3", max_retries=2),
                                          job_id="fails").name)
    assert job.status.state == batch_v1.JobStatus.State.FAILED
    last = job.status.status_events[-1]
    assert "Job failed due to task failure. Specifically, task with index 0 failed" in last.description
    assert "with exit code 3" in last.description
    assert last.task_execution.exit_code == 3
    tasks = list(client.list_tasks(parent=f"{job.name}/taskGroups/group0"))
    failures = [e for e in tasks[0].status.status_events if e.task_state == batch_v1.TaskStatus.State.FAILED]
    assert len(failures) == 3  # the first run and two retries
    assert dict(job.status.task_groups["group0"].counts) == {"FAILED": 1}


def test_fail_task_lifecycle_policy_stops_retries_for_its_exit_code(sim_shared: SimServer) -> None:
    client = _batch(sim_shared)
    job = _job(tasks=1, parallelism=1, script="exit 2", max_retries=3)
    job.task_groups[0].task_spec.lifecycle_policies = [batch_v1.LifecyclePolicy(
        action=batch_v1.LifecyclePolicy.Action.FAIL_TASK,
        action_condition=batch_v1.LifecyclePolicy.ActionCondition(exit_codes=[2]))]
    done = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}", job=job,
                                           job_id="bad-input").name)
    assert done.status.state == batch_v1.JobStatus.State.FAILED
    task = client.get_task(name=f"projects/{PROJECT}/locations/{REGION}/jobs/bad-input/taskGroups/group0/tasks/0")
    assert [e.task_execution.exit_code for e in task.status.status_events
            if e.task_state == batch_v1.TaskStatus.State.FAILED] == [2]  # no retry


def _echo_environment(invocation: TaskInvocation) -> TaskOutcome:
    env = invocation.environment
    return TaskOutcome(0, [f"index={env['BATCH_TASK_INDEX']} count={env['BATCH_TASK_COUNT']} "
                           f"uid={env['BATCH_JOB_UID']} output={env['OUTPUT']} target={env['SOVAUDIT_TARGET']}"])


def test_custom_runner_runs_in_a_process_pool_and_its_lines_become_task_logs(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(task_runner=_echo_environment)
    client = _batch(sim)
    job = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}", job=_job(tasks=2),
                                          job_id="echo").name, timeout=30)
    assert job.status.state == batch_v1.JobStatus.State.SUCCEEDED
    logging_client = cloud_logging.Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                                          client_options={"api_endpoint": sim.url})
    lines = sorted(entry.payload for entry in logging_client.list_entries(filter_=(
        f'logName="projects/{PROJECT}/logs/batch_task_logs" AND labels.job_uid="{job.uid}" '
        'AND timestamp>="2020-01-01T00:00:00Z"')))
    assert lines == [f"index={i} count=2 uid={job.uid} output=gs://fed-node-us-processed target={sim.url}"
                     for i in range(2)]


def test_unpicklable_runner_runs_on_threads_with_each_task_index_once(
        sim_factory: Callable[..., SimServer]) -> None:
    seen: list[tuple[int, str]] = []

    def record(invocation: TaskInvocation) -> TaskOutcome:  # a closure: cannot cross into a process
        seen.append((invocation.task_index, invocation.environment["BATCH_TASK_RETRY_ATTEMPT"]))
        return TaskOutcome(0, [])

    sim = sim_factory(task_runner=record)
    client = _batch(sim)
    job = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}",
                                          job=_job(tasks=3, parallelism=3), job_id="closure").name)
    assert job.status.state == batch_v1.JobStatus.State.SUCCEEDED
    assert sorted(seen) == [(0, "0"), (1, "0"), (2, "0")]


def test_list_jobs_filters_and_pages(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    parent = f"projects/{PROJECT}/locations/{REGION}"
    for n in range(3):
        client.create_job(parent=parent, job=_job(tasks=1), job_id=f"listed-{n}")
    listed = {j.name.rsplit("/", 1)[-1] for j in client.list_jobs(request={"parent": parent,
                                                                         "filter": 'labels.run="test"',
                                                                         "page_size": 2})}
    assert {"listed-0", "listed-1", "listed-2"} <= listed
    assert "preprocess-genomes-001" not in listed
    finished = {j.name.rsplit("/", 1)[-1] for j in client.list_jobs(
        request={"parent": parent, "filter": 'status.state="SUCCEEDED"'})}
    assert "preprocess-genomes-001" in finished
    pager = client.list_jobs(request={"parent": parent, "page_size": 2})
    assert len(list(pager.pages)) >= 2


def test_delete_job_returns_an_operation_whose_result_completes_and_removes_job_and_vms(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    job = _wait(client, client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}", job=_job(),
                                          job_id="to-delete").name)
    assert _vms(sim, job.uid)
    operation = client.delete_job(name=job.name)
    operation.result(timeout=5)
    with pytest.raises(exceptions.NotFound):
        client.get_job(name=job.name)
    assert _vms(sim, job.uid) == []
    with sim.state.lock:
        methods = {e["protoPayload"]["methodName"] for e in sim.state.log_entries
                   if e.get("protoPayload", {}).get("resourceName") ==
                   f"projects/{NUMBER}/locations/{REGION}/jobs/to-delete"}
    assert {"google.cloud.batch.v1.BatchService.CreateJob", "google.cloud.batch.v1.BatchService.DeleteJob"} <= methods


def test_cancel_job_stops_a_running_job_and_its_vms(sim_shared: SimServer) -> None:
    sim = sim_shared
    client = _batch(sim)
    created = client.create_job(parent=f"projects/{PROJECT}/locations/{REGION}",
                                job=_job(tasks=2, script="sleep 1"), job_id="to-cancel")
    deadline = time.monotonic() + 5
    while client.get_job(name=created.name).status.state != batch_v1.JobStatus.State.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert _vms(sim, created.uid)
    client.cancel_job(name=created.name).result(timeout=5)
    job = client.get_job(name=created.name)
    assert job.status.state == batch_v1.JobStatus.State.CANCELLED
    assert [e.description.split(" for job ")[0] for e in job.status.status_events[-2:]] == [
        "Job state is set from RUNNING to CANCELLATION_IN_PROGRESS",
        "Job state is set from CANCELLATION_IN_PROGRESS to CANCELLED"]
    assert _vms(sim, created.uid) == []
    time.sleep(0.3)  # the driver has stopped: the job stays CANCELLED
    assert client.get_job(name=created.name).status.state == batch_v1.JobStatus.State.CANCELLED


def test_seeded_finished_job_is_served(sim_shared: SimServer) -> None:
    sim = sim_shared
    job = _batch(sim).get_job(name=f"projects/{PROJECT}/locations/{REGION}/jobs/preprocess-genomes-001")
    assert job.status.state == batch_v1.JobStatus.State.SUCCEEDED


def test_eu_node_runs_jobs_in_europe_west4_and_refuses_us_central1(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(node="eu")
    client = _batch(sim)
    eu_job = batch_v1.Job(
        task_groups=[batch_v1.TaskGroup(task_count=2, task_spec=batch_v1.TaskSpec(
            runnables=[batch_v1.Runnable(script=batch_v1.Runnable.Script(text="true"))]))],
        allocation_policy=batch_v1.AllocationPolicy(instances=[batch_v1.AllocationPolicy.InstancePolicyOrTemplate(
            instance_template="projects/fed-node-eu/global/instanceTemplates/sev-n2d-batch")]))
    created = client.create_job(parent="projects/fed-node-eu/locations/europe-west4", job=eu_job, job_id="eu-run")
    assert created.name == "projects/fed-node-eu/locations/europe-west4/jobs/eu-run"
    assert created.task_groups[0].name == "projects/271828182845/locations/europe-west4/jobs/eu-run/taskGroups/group0"
    # Unset allowedLocations: Batch fills in the zones of the job's region.
    assert list(created.allocation_policy.location.allowed_locations) == [
        "zones/europe-west4-a", "zones/europe-west4-b", "zones/europe-west4-c"]
    job = _wait(client, created.name)
    assert job.status.state == batch_v1.JobStatus.State.SUCCEEDED
    instances = compute_v1.InstancesClient(transport="rest", client_options={"api_endpoint": sim.url},
                                           credentials=AnonymousCredentials())
    zones = {vm.zone.rsplit("/", 1)[-1] for _scope, scoped in instances.aggregated_list(
        request={"project": "fed-node-eu", "filter": f'labels.batch-job-uid = "{job.uid}"'}) for vm in scoped.instances}
    assert zones and all(zone.startswith("europe-west4-") for zone in zones)
    with pytest.raises(exceptions.BadRequest, match="constraints/gcp.resourceLocations"):
        client.create_job(parent="projects/fed-node-eu/locations/us-central1", job=eu_job, job_id="us-probe")
