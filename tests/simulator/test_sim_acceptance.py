"""Issue 2's acceptance script, end to end through the official clients only.

Reads the effective location policy; is refused (with the exception types the clients raise on
Google, naming the constraint) when creating a bucket, a dataset, a VM or a Batch job outside
us-central1; runs a Batch job in us-central1 to SUCCEEDED; finds its VMs with aggregated_list by
batch-job-uid and their instances.insert audit entries with list_entries; sees an object upload
leave a data-access entry; and sees `=` and `:` differ as they do on Google.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import batch_v1, bigquery, compute_v1, storage
from sim_clients import logging, options, orgpolicy

PROJECT = "fed-node-us"
CONSTRAINT = "constraints/gcp.resourceLocations"


def _rest(client_class, url):
    return client_class(transport="rest", client_options=options(url), credentials=AnonymousCredentials())


def _batch_job(region: str) -> batch_v1.Job:
    return batch_v1.Job(
        task_groups=[{"task_count": 2, "task_spec": {"runnables": [{"script": {"text": "echo hi"}}]}}],
        allocation_policy={
            "location": {"allowed_locations": [f"regions/{region}"]},
            "instances": [{"instance_template": f"projects/{PROJECT}/global/instanceTemplates/sev-n2d-batch"}],
            "service_account": {"email": f"batch-runner@{PROJECT}.iam.gserviceaccount.com"}},
        logs_policy={"destination": "CLOUD_LOGGING"})


def test_issue_2_acceptance_script(sim) -> None:
    url = sim.url
    since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    policy = orgpolicy(url).get_effective_policy(name=f"projects/{PROJECT}/policies/gcp.resourceLocations")
    assert list(policy.spec.rules[0].values.allowed_values) == ["in:us-central1-locations"]

    gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options=options(url))
    with pytest.raises(exceptions.PreconditionFailed, match=CONSTRAINT):
        gcs.create_bucket("fed-node-us-probe-eu", location="europe-west4")

    bq = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options=options(url))
    dataset = bigquery.Dataset(f"{PROJECT}.probe_eu")
    dataset.location = "europe-west4"
    with pytest.raises(exceptions.BadRequest, match=CONSTRAINT):
        bq.create_dataset(dataset)

    instances = _rest(compute_v1.InstancesClient, url)
    vm = compute_v1.Instance(
        name="probe-vm", machine_type="zones/europe-west4-a/machineTypes/n2d-standard-4",
        disks=[{"boot": True, "auto_delete": True, "initialize_params": {"source_image": "projects/debian-cloud/global/images/family/debian-12"}}],
        network_interfaces=[{"network": f"projects/{PROJECT}/global/networks/fed-node-us-multiomics-vpc"}])
    with pytest.raises(exceptions.PreconditionFailed, match=CONSTRAINT):
        instances.insert(project=PROJECT, zone="europe-west4-a", instance_resource=vm).result()

    batch = _rest(batch_v1.BatchServiceClient, url)
    with pytest.raises(exceptions.BadRequest, match=CONSTRAINT):
        batch.create_job(parent=f"projects/{PROJECT}/locations/europe-west4", job=_batch_job("europe-west4"),
                         job_id="probe-eu")

    job = batch.create_job(parent=f"projects/{PROJECT}/locations/us-central1", job=_batch_job("us-central1"),
                           job_id="acceptance-run")
    deadline = time.monotonic() + 60
    while job.status.state not in (batch_v1.JobStatus.State.SUCCEEDED, batch_v1.JobStatus.State.FAILED):
        assert time.monotonic() < deadline, f"job stuck in {job.status.state.name}"
        time.sleep(0.2)
        job = batch.get_job(name=job.name)
    assert job.status.state == batch_v1.JobStatus.State.SUCCEEDED

    found = [vm for _, scoped in instances.aggregated_list(request={
                 "project": PROJECT, "filter": f'labels.batch-job-uid = "{job.uid}"'}) for vm in scoped.instances]
    assert found and all(v.zone.rsplit("/", 1)[-1].startswith("us-central1-") for v in found)

    inserts = list(logging(url).list_entries(
        resource_names=[f"projects/{PROJECT}"],
        filter_=f'protoPayload.methodName="v1.compute.instances.insert" AND operation.first=true '
                f'AND protoPayload.request.labels.batch-job-uid="{job.uid}" AND timestamp>="{since}"'))
    assert sorted(e.payload["resourceName"].rsplit("/", 1)[-1] for e in inserts) == sorted(v.name for v in found)

    gcs.bucket("fed-node-us-processed").blob("acceptance/hello.txt").upload_from_string(b"hello")
    base = (f'log_id("cloudaudit.googleapis.com/data_access") AND protoPayload.methodName="storage.objects.create" '
            f'AND timestamp>="{since}"')
    exact = list(logging(url).list_entries(resource_names=[f"projects/{PROJECT}"],
                                          filter_=f'{base} AND protoPayload.resourceName="hello.txt"'))
    has = list(logging(url).list_entries(resource_names=[f"projects/{PROJECT}"],
                                        filter_=f'{base} AND protoPayload.resourceName:"hello.txt"'))
    assert exact == []
    assert [e.payload["resourceName"] for e in has] == [
        "projects/_/buckets/fed-node-us-processed/objects/acceptance/hello.txt"]
