"""Org-policy and VPC-SC refusals have Google's error shapes, and the clients raise what they raise on Google.

The refusals are served from a probe route added to the real router, and read back with
google-api-core's own HTTP-error mapping and the Logging client, so the test sees exactly what a
client of Compute, Storage, Batch or BigQuery would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from sim_clients import logging, session

from sovaudit.simulator import enforcement
from sovaudit.simulator.http import SimRequest
from sovaudit.simulator.server import SimServer, build_router, load_seeded_state

RESOURCES = {
    "compute": "projects/fed-node-us/zones/{loc}/instances/probe-vm",
    "storage": "probe-bucket",
    "batch": "projects/314159265358/locations/{loc}/jobs/probe-job",
    "bigquery": "projects/fed-node-us/datasets/probe_ds",
}


def _probe(req: SimRequest) -> dict[str, str]:
    api, location = req.path_args["api"], req.path_args["location"]
    enforcement.check_location(req.state, location, api=api, resource=RESOURCES[api].format(loc=location))
    return {"created": location}


def _write(req: SimRequest) -> dict[str, str]:
    enforcement.check_bucket_write(req.state, req.path_args["bucket"], "out.parquet",
                                   principal="batch-runner@fed-node-us.iam.gserviceaccount.com")
    return {"written": req.path_args["bucket"]}


def _server(scenarios: tuple[str, ...] = ()) -> SimServer:
    router = build_router()
    router.add("POST", "/_probe/<api>/<location>", _probe, api="probe")
    router.add("POST", "/_write/<bucket>", _write, api="probe")
    return SimServer(load_seeded_state("us", scenarios), router=router).start()


@pytest.fixture(scope="module")
def probe_sim() -> Iterator[SimServer]:
    server = _server()
    yield server
    server.stop()


def refusal(sim: SimServer, api: str, location: str) -> exceptions.GoogleAPICallError:
    response = session().post(f"{sim.url}/_probe/{api}/{location}")
    assert response.status_code >= 400, response.text
    return exceptions.from_http_response(response)


def test_compute_refusal_is_412_condition_not_met_naming_zone_and_resource(probe_sim) -> None:
    error = refusal(probe_sim, "compute", "europe-west4-a")
    assert isinstance(error, exceptions.PreconditionFailed)
    assert error.message.endswith("Location ZONE:europe-west4-a violates constraint constraints/gcp.resourceLocations "
                             "on the resource projects/fed-node-us/zones/europe-west4-a/instances/probe-vm.")
    assert error.errors[0]["reason"] == "conditionNotMet"


def test_storage_refusal_quotes_the_lower_case_location(probe_sim) -> None:
    error = refusal(probe_sim, "storage", "US")
    assert isinstance(error, exceptions.PreconditionFailed)
    assert error.message.endswith("'us' violates constraint 'constraints/gcp.resourceLocations'")
    assert error.errors[0]["locationType"] == "header"


@pytest.mark.parametrize("api", ["batch", "bigquery"])
def test_grpc_style_refusal_is_400_failed_precondition_raised_as_bad_request(probe_sim, api) -> None:
    error = refusal(probe_sim, api, "europe-west4")
    # google-api-core maps REST errors by HTTP status only: 400 is BadRequest, whatever `status` says.
    assert type(error) is exceptions.BadRequest
    assert "constraints/gcp.resourceLocations" in error.message
    body = session().post(f"{probe_sim.url}/_probe/{api}/europe-west4").json()["error"]
    assert body["status"] == "FAILED_PRECONDITION"
    violation = body["details"][0]
    assert violation["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure"
    assert violation["violations"][0]["type"] == "constraints/gcp.resourceLocations"
    assert violation["violations"][0]["subject"] == "orgpolicy:projects/314159265358"


@pytest.mark.parametrize("api,location", [("compute", "us-central1-f"), ("storage", "US-CENTRAL1"),
                                          ("batch", "us-central1"), ("bigquery", "us-central1"),
                                          ("storage", "global")])
def test_locations_inside_the_policy_are_allowed(probe_sim, api, location) -> None:
    assert session().post(f"{probe_sim.url}/_probe/{api}/{location}").json() == {"created": location}


def test_a_region_group_does_not_admit_the_multi_region_above_it(probe_sim) -> None:
    assert isinstance(refusal(probe_sim, "bigquery", "US"), exceptions.BadRequest)


def test_refusals_are_audit_logged_with_the_violated_constraint(probe_sim) -> None:
    refusal(probe_sim, "compute", "us-east1-b")
    found = list(logging(probe_sim.url).list_entries(
        resource_names=["projects/fed-node-us"],
        filter_='log_id("cloudaudit.googleapis.com/activity") AND severity=ERROR AND '
                'protoPayload.policyViolationInfo.orgPolicyViolationInfo.violationInfo.checkedValue="us-east1-b"'))
    assert len(found) == 1
    info = found[0].payload["policyViolationInfo"]["orgPolicyViolationInfo"]["violationInfo"][0]
    assert info["constraint"] == "constraints/gcp.resourceLocations"
    assert found[0].payload["status"]["code"] == 9


def test_relaxed_org_policy_lets_every_location_through() -> None:
    server = _server(("org-policy-relaxed",))
    try:
        assert session().post(f"{server.url}/_probe/compute/europe-west4-a").status_code == 200
    finally:
        server.stop()


def test_write_to_a_bucket_outside_the_perimeter_is_forbidden_and_policy_denied(probe_sim) -> None:
    response = session().post(f"{probe_sim.url}/_write/fed-node-us-processed-export")
    error = exceptions.from_http_response(response)
    assert isinstance(error, exceptions.Forbidden)
    # Cloud Storage's own text (reference §1.4); the unique id is only in the Policy Denied entry.
    assert error.message.endswith(": Request violates VPC Service Controls.")
    assert error.errors[0]["reason"] == "vpcServiceControls"
    entry = probe_sim.state.log_entries[-1]
    assert entry["logName"] == "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fpolicy"
    assert entry["protoPayload"]["metadata"]["resourceNames"] == [
        "projects/_/buckets/fed-node-us-processed-export/objects/out.parquet"]
    assert entry["protoPayload"]["metadata"]["egressViolations"][0]["targetResource"] == "projects/112233445566"


def test_write_to_a_node_bucket_is_not_a_perimeter_crossing(probe_sim) -> None:
    before = len(probe_sim.state.log_entries)
    assert session().post(f"{probe_sim.url}/_write/fed-node-us-processed").status_code == 200
    assert len(probe_sim.state.log_entries) == before


def test_dry_run_perimeter_allows_the_write_but_logs_a_dry_run_violation() -> None:
    server = _server(("perimeter-dry-run",))
    try:
        assert session().post(f"{server.url}/_write/fed-node-us-processed-export").status_code == 200
        metadata = server.state.log_entries[-1]["protoPayload"]["metadata"]
        assert metadata["dryRun"] is True
    finally:
        server.stop()
