"""VPC Service Controls in the simulator, through the official clients: the Access Context Manager API
(googleapiclient), and the decisions the perimeters make on Cloud Storage and BigQuery calls
(google-cloud-storage / google-cloud-bigquery), with the Policy Denied entries in the projects Google
writes them to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage
from sim_clients import acm

from sovaudit.simulator import enforcement, vpcsc

POLICY = "accessPolicies/555000111"
PERIMETER = f"{POLICY}/servicePerimeters/fed_node_us"
NODE = "projects/314159265358"
PARTNER = "projects/112233445566"
FOREIGN = "fed-node-us-processed-export"
RAW = "fed-node-us-raw-vcfs"
NODE_POLICY_LOG = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fpolicy"
PARTNER_POLICY_LOG = "projects/partner-analytics-us/logs/cloudaudit.googleapis.com%2Fpolicy"
PARTNER_DATA_LOG = "projects/partner-analytics-us/logs/cloudaudit.googleapis.com%2Fdata_access"
NODE_DATA_LOG = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fdata_access"
STORAGE_ALL = [{"serviceName": "storage.googleapis.com", "methodSelectors": [{"method": "*"}]}]
PARTNER_PERIMETER = {"name": f"{POLICY}/servicePerimeters/partner", "title": "partner",
                     "status": {"resources": [PARTNER], "restrictedServices": ["storage.googleapis.com"]}}
BRIDGE = {"name": f"{POLICY}/servicePerimeters/bridge", "title": "bridge", "perimeterType": "PERIMETER_TYPE_BRIDGE",
          "status": {"resources": [NODE, PARTNER]}}


def scenario(tmp_path: Path, node: dict[str, Any]) -> str:
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump({"name": "staged", "description": "test", "fails": [], "node": node}))
    return str(path)


def gcs(sim: Any, principal: str | None = None, caller_ip: str | None = None) -> storage.Client:
    client = storage.Client(project="fed-node-us", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": sim.url})
    if principal:
        client._http.headers["X-Sim-Principal"] = principal
    if caller_ip:
        client._http.headers["X-Sim-Caller-Ip"] = caller_ip
    return client


def new_entries(sim: Any, before: int, log: str, method: str | None = None) -> list[dict[str, Any]]:
    """Entries of `log` since `before` (of one method: the client may follow a refusal with a lookup)."""
    return [e for e in sim.state.log_entries[before:] if e["logName"] == log
            and (method is None or e["protoPayload"].get("methodName") == method)]


CREATE = "google.storage.objects.create"


# ---- the Access Context Manager API --------------------------------------------------------------

def test_acm_lists_every_perimeter_bridges_with_their_type_and_access_levels(sim_factory, tmp_path) -> None:
    level = {"name": f"{POLICY}/accessLevels/office", "title": "office",
             "basic": {"conditions": [{"ipSubnetworks": ["198.51.100.0/24"]}]}}
    sim = sim_factory(scenarios=[scenario(tmp_path, {"extra_perimeters": [PARTNER_PERIMETER, BRIDGE],
                                                     "access_levels": [level]})], job_tasks=1)
    api = acm(sim.url).accessPolicies()
    listed = {p["name"]: p for p in api.servicePerimeters().list(parent=POLICY).execute()["servicePerimeters"]}
    assert set(listed) == {PERIMETER, PARTNER_PERIMETER["name"], BRIDGE["name"]}
    assert listed[BRIDGE["name"]]["perimeterType"] == "PERIMETER_TYPE_BRIDGE"
    assert "perimeterType" not in listed[PARTNER_PERIMETER["name"]]   # REGULAR is the default, left out
    assert api.accessLevels().list(parent=POLICY).execute() == {"accessLevels": [level]}
    assert api.accessLevels().get(name=level["name"]).execute() == level
    looked_up = acm(sim.url).projects().lookupConfiguredServicePerimeter(resource="projects/314159265358").execute()
    assert looked_up == {"servicePerimeter": PERIMETER, "restrictedResource": NODE,
                         "servicePerimeterDryRun": PERIMETER, "restrictedResourceDryRun": NODE}


def test_a_pending_spec_is_served_beside_the_status(sim_factory, tmp_path) -> None:
    spec = {"resources": [NODE, PARTNER], "restrictedServices": ["storage.googleapis.com"]}
    sim = sim_factory(scenarios=[scenario(tmp_path, {"perimeter": {"spec": spec}})], job_tasks=1)
    got = acm(sim.url).accessPolicies().servicePerimeters().get(name=PERIMETER).execute()
    assert got["spec"] == spec and got["useExplicitDryRunSpec"] is True and got["status"]["resources"] == [NODE]


# ---- decisions ----------------------------------------------------------------------------------

def test_inside_to_outside_is_refused_with_a_policy_denied_entry_in_the_node_only(sim_factory) -> None:
    sim = sim_factory(job_tasks=1)
    before = len(sim.state.log_entries)
    with pytest.raises(exceptions.Forbidden, match="Request violates VPC Service Controls"):
        gcs(sim).bucket(FOREIGN).blob("leak.parquet").upload_from_string(b"rows")
    (entry,) = new_entries(sim, before, NODE_POLICY_LOG, CREATE)
    metadata = entry["protoPayload"]["metadata"]
    assert metadata["egressViolations"] == [{"servicePerimeter": PERIMETER, "source": NODE, "sourceType": "Resource",
                                             "targetResource": PARTNER,
                                             "targetResourcePermissions": ["storage.objects.create"]}]
    assert metadata["violationReason"] == "NETWORK_NOT_IN_SAME_SERVICE_PERIMETER" and "dryRun" not in metadata
    assert entry["protoPayload"]["status"]["details"][0]["violations"][0]["type"] == "VPC_SERVICE_CONTROLS"
    # The partner project is in no perimeter: it gets no Policy Denied entry, and nothing was written.
    assert not [e for e in sim.state.log_entries[before:] if e["logName"].startswith("projects/partner-analytics-us/")]
    assert (FOREIGN, "leak.parquet") not in sim.state.objects


def test_an_egress_rule_lets_the_write_out_and_the_partner_logs_it(sim_factory, tmp_path) -> None:
    rule = {"egressFrom": {"identities": ["serviceAccount:batch-runner@fed-node-us.iam.gserviceaccount.com"]},
            "egressTo": {"resources": [PARTNER], "operations": STORAGE_ALL}}
    sim = sim_factory(scenarios=[scenario(tmp_path, {"perimeter": {"config": {"egressPolicies": [rule]}}})],
                      job_tasks=1)
    before = len(sim.state.log_entries)
    gcs(sim).bucket(FOREIGN).blob("out.parquet").upload_from_string(b"rows")
    assert not new_entries(sim, before, NODE_POLICY_LOG) and not new_entries(sim, before, NODE_DATA_LOG)
    (written,) = new_entries(sim, before, PARTNER_DATA_LOG, "storage.objects.create")
    assert written["resource"]["labels"]["project_id"] == "partner-analytics-us"
    # The rule names one identity: another service account of the node is still refused.
    with pytest.raises(exceptions.Forbidden):
        gcs(sim, "other@fed-node-us.iam.gserviceaccount.com").bucket(FOREIGN).blob("x").upload_from_string(b"x")


def test_an_egress_rule_to_another_project_does_not_open_the_partner_bucket(sim_factory, tmp_path) -> None:
    rule = {"egressFrom": {"identityType": "ANY_IDENTITY"},
            "egressTo": {"resources": ["projects/999"], "operations": STORAGE_ALL}}
    sim = sim_factory(scenarios=[scenario(tmp_path, {"perimeter": {"config": {"egressPolicies": [rule]}}})],
                      job_tasks=1)
    with pytest.raises(exceptions.Forbidden):
        gcs(sim).bucket(FOREIGN).blob("out.parquet").upload_from_string(b"rows")


def test_a_bridge_lets_the_node_reach_the_partner_perimeter_and_without_it_both_perimeters_log(
        sim_factory, tmp_path) -> None:
    without = sim_factory(scenarios=[scenario(tmp_path, {"extra_perimeters": [PARTNER_PERIMETER]})], job_tasks=1)
    before = len(without.state.log_entries)
    with pytest.raises(exceptions.Forbidden):
        gcs(without).bucket(FOREIGN).blob("x.parquet").upload_from_string(b"rows")
    node_entry, = new_entries(without, before, NODE_POLICY_LOG, CREATE)
    partner_entry, = new_entries(without, before, PARTNER_POLICY_LOG, CREATE)
    assert node_entry["protoPayload"]["metadata"]["violationReason"] == "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER"
    assert partner_entry["protoPayload"]["metadata"]["securityPolicyInfo"]["servicePerimeterName"] == \
        PARTNER_PERIMETER["name"]
    assert {"egressViolations", "ingressViolations"} <= set(node_entry["protoPayload"]["metadata"])
    (tmp_path / "b").mkdir()
    bridged = sim_factory(scenarios=[scenario(tmp_path / "b", {"extra_perimeters": [PARTNER_PERIMETER, BRIDGE]})],
                          job_tasks=1)
    gcs(bridged).bucket(FOREIGN).blob("x.parquet").upload_from_string(b"rows")
    assert (FOREIGN, "x.parquet") in bridged.state.objects


# IAM lets these outside users in (and bob, who is in no group, and the writes): what refuses them is
# the perimeter alone.
READERS = [{"role": "roles/storage.objectAdmin", "members": [
    "user:mallory@example.org", "user:ana@partner.example", "user:bob@partner.example",
    "serviceAccount:batch-runner@fed-node-us.iam.gserviceaccount.com"]}]


def test_outside_caller_is_refused_unless_an_access_level_matches(sim_factory, tmp_path) -> None:
    level = {"name": f"{POLICY}/accessLevels/office", "title": "office",
             "basic": {"conditions": [{"ipSubnetworks": ["198.51.100.0/24"]}]}}
    sim = sim_factory(scenarios=[scenario(tmp_path, {"access_levels": [level],
                                                     "perimeter": {"config": {"accessLevels": [level["name"]]}},
                                                     "bucket_iam": {"processed": READERS}})],
                      job_tasks=1)
    obj = "manifests/preprocess-genomes-001/0.json"
    before = len(sim.state.log_entries)
    with pytest.raises(exceptions.Forbidden):
        gcs(sim, "mallory@example.org", "203.0.113.9").bucket("fed-node-us-processed").blob(obj).download_as_bytes()
    refusals = new_entries(sim, before, NODE_POLICY_LOG, "google.storage.objects.get")
    assert refusals   # one per call the client made
    for entry in refusals:
        metadata = entry["protoPayload"]["metadata"]
        assert metadata["violationReason"] == "NO_MATCHING_ACCESS_LEVEL"
        assert metadata["ingressViolations"][0]["targetResource"] == NODE and "egressViolations" not in metadata
        assert entry["protoPayload"]["authenticationInfo"]["principalEmail"] == "mallory@example.org"
    data = gcs(sim, "mallory@example.org", "198.51.100.20").bucket("fed-node-us-processed").blob(obj).download_as_bytes()
    assert b"rows_loaded" in data


def test_ingress_rule_matches_identity_source_and_operation(sim_factory, tmp_path) -> None:
    rule = {"ingressFrom": {"identities": ["group:partners@example.org"], "sources": [{"accessLevel": "*"}]},
            "ingressTo": {"resources": [NODE], "operations": [
                {"serviceName": "storage.googleapis.com", "methodSelectors": [{"method": "google.storage.objects.get"}]}]}}
    sim = sim_factory(scenarios=[scenario(tmp_path, {"groups": {"partners@example.org": ["ana@partner.example"]},
                                                     "perimeter": {"config": {"ingressPolicies": [rule]}},
                                                     "bucket_iam": {"processed": READERS}})],
                      job_tasks=1)
    blob = "manifests/preprocess-genomes-001/0.json"
    assert gcs(sim, "ana@partner.example").bucket("fed-node-us-processed").blob(blob).download_as_bytes()
    with pytest.raises(exceptions.Forbidden):     # not in the group
        gcs(sim, "bob@partner.example").bucket("fed-node-us-processed").blob(blob).download_as_bytes()
    with pytest.raises(exceptions.Forbidden):     # the rule allows reads, not writes
        gcs(sim, "ana@partner.example").bucket("fed-node-us-processed").blob("x").upload_from_string(b"x")


def test_dry_run_perimeter_logs_a_dry_run_violation_and_lets_the_write_through(sim_factory) -> None:
    sim = sim_factory(scenarios=["perimeter-dry-run"], job_tasks=1)
    before = len(sim.state.log_entries)
    gcs(sim).bucket(FOREIGN).blob("y.parquet").upload_from_string(b"rows")
    (entry,) = new_entries(sim, before, NODE_POLICY_LOG, CREATE)
    assert entry["protoPayload"]["metadata"]["dryRun"] is True
    assert "message" not in entry["protoPayload"]["status"]
    assert len(new_entries(sim, before, PARTNER_DATA_LOG, "storage.objects.create")) == 1


def test_a_pending_spec_only_logs_what_it_would_refuse(sim_factory, tmp_path) -> None:
    # Enforced: an egress rule lets the write out; the pending spec has none, so the write is a dry-run violation.
    rule = {"egressFrom": {"identityType": "ANY_SERVICE_ACCOUNT"},
            "egressTo": {"resources": [PARTNER], "operations": STORAGE_ALL}}
    spec = {"resources": [NODE], "restrictedServices": ["storage.googleapis.com"]}
    sim = sim_factory(scenarios=[scenario(tmp_path, {"perimeter": {"config": {"egressPolicies": [rule]},
                                                                   "spec": spec}})], job_tasks=1)
    before = len(sim.state.log_entries)
    gcs(sim).bucket(FOREIGN).blob("z.parquet").upload_from_string(b"rows")
    (entry,) = new_entries(sim, before, NODE_POLICY_LOG, CREATE)
    assert entry["protoPayload"]["metadata"]["dryRun"] is True


def test_unrestricted_service_is_not_protected(sim_factory, tmp_path) -> None:
    sim = sim_factory(scenarios=["perimeter-missing-service"], job_tasks=1)
    state = sim.state
    allowed = vpcsc.judge(state, vpcsc.Request(principal="mallory@example.org", caller_project=None,
                                               service="bigquery.googleapis.com", method="*", target_project=NODE))
    refused = vpcsc.judge(state, vpcsc.Request(principal="mallory@example.org", caller_project=None,
                                               service="storage.googleapis.com", method="*", target_project=NODE))
    assert not allowed.refused and refused.refused


def test_bigquery_refuses_an_outside_caller_in_its_own_error_shape(sim_factory) -> None:
    sim = sim_factory(job_tasks=1)
    client = bigquery.Client(project="fed-node-us", credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": sim.url})
    client._http.headers["X-Sim-Principal"] = "mallory@example.org"
    with pytest.raises(exceptions.Forbidden) as refused:
        list(client.list_tables("hospital_data"))
    error = refused.value
    assert "Request is prohibited by organization's policy. vpcServiceControlsUniqueIdentifier: " in error.message
    assert error.details[0]["violations"][0]["type"] == "VPC_SERVICE_CONTROLS"
    # The node's workload (no header) is inside and lists its tables.
    assert [t.table_id for t in bigquery.Client(project="fed-node-us", credentials=AnonymousCredentials(),
                                                client_options={"api_endpoint": sim.url}).list_tables("hospital_data")]


def test_check_perimeter_egress_keeps_its_signature_for_cross_project_jobs(sim_factory) -> None:
    state = sim_factory(job_tasks=1).state
    from sovaudit.simulator.http import ApiError

    with pytest.raises(ApiError) as refused:
        enforcement.check_perimeter_egress(state, service="bigquery.googleapis.com",
                                           method="google.cloud.bigquery.v2.JobService.InsertJob",
                                           target_resource=PARTNER, principal="batch-runner@fed-node-us.iam.gserviceaccount.com",
                                           permission="bigquery.tables.updateData",
                                           resource_names=[f"{PARTNER}/datasets/d/tables/t"])
    assert refused.value.code == 403 and refused.value.body["error"]["status"] == "PERMISSION_DENIED"
    entry = state.log_entries[-1]
    assert entry["protoPayload"]["metadata"]["violationReason"] == "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER"
    assert entry["protoPayload"]["metadata"]["resourceNames"] == [f"{PARTNER}/datasets/d/tables/t"]


# ---- the responses follow Google's discovery document ---------------------------------------------

def _discovery() -> dict[str, Any]:
    import json

    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "accesscontextmanager.v1.json"
    return dict(json.loads(path.read_text()))


def _schema_problems(value: Any, schema: dict[str, Any], schemas: dict[str, Any], where: str) -> list[str]:
    """Every field unknown to the discovery document, or of the wrong JSON type / enum value."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        problems = []
        for key, item in value.items():
            if key not in schema["properties"]:
                problems.append(f"{where}.{key}: not in {schema.get('id')}")
            else:
                problems += _schema_problems(item, schema["properties"][key], schemas, f"{where}.{key}")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        return [p for i, item in enumerate(value) for p in _schema_problems(item, schema["items"], schemas, f"{where}[{i}]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} is not one of {schema['enum']}"]
    if kind == "boolean" and not isinstance(value, bool):
        return [f"{where}: expected a boolean"]
    return []


@pytest.mark.parametrize("scenario_name", ["perimeter-bridge", "perimeter-ingress-one-user", "perimeter-spec-differs",
                                           "perimeter-egress-any", "perimeter-access-level", "perimeter-dry-run"])
def test_acm_responses_match_the_discovery_document(sim_factory, scenario_name: str) -> None:
    document = _discovery()
    schemas = document["schemas"]
    sim = sim_factory(scenarios=[scenario_name], job_tasks=1)
    api = acm(sim.url)
    answers = [
        ("ListServicePerimetersResponse", api.accessPolicies().servicePerimeters().list(parent=POLICY).execute()),
        ("ListAccessLevelsResponse", api.accessPolicies().accessLevels().list(parent=POLICY).execute()),
        ("LookupConfiguredServicePerimeterResponse",
         api.projects().lookupConfiguredServicePerimeter(resource="projects/314159265358").execute()),
    ]
    for schema_id, body in answers:
        assert _schema_problems(body, {"$ref": schema_id}, schemas, schema_id) == []
