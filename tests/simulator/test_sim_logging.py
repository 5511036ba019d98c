"""Cloud Logging v2 through the official client: audit entries found by filter, as on Google."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.api_core import exceptions
from google.cloud import logging as glog
from sim_clients import logging, session

PROJECT = ["projects/fed-node-us"]
INSERT_FIRST = 'protoPayload.methodName="v1.compute.instances.insert" AND operation.first=true'


def window(sim, *, before: timedelta = timedelta(minutes=5)) -> str:
    seed = sim.state.extras["seed"]
    start = datetime.fromisoformat(seed.window_start.replace("Z", "+00:00")) - before
    end = datetime.fromisoformat(seed.window_end.replace("Z", "+00:00")) + timedelta(minutes=5)
    return f'timestamp>="{start:%Y-%m-%dT%H:%M:%SZ}" AND timestamp<="{end:%Y-%m-%dT%H:%M:%SZ}"'


def entries(sim, filter_: str, **kwargs):
    return list(logging(sim.url).list_entries(resource_names=PROJECT, filter_=filter_, **kwargs))


def test_instance_inserts_of_the_job_carry_the_full_request_with_sev(sim_shared) -> None:
    uid = sim_shared.state.extras["seed"].job_uid
    found = entries(sim_shared, f'log_id("cloudaudit.googleapis.com/activity") AND {INSERT_FIRST} '
                                f'AND protoPayload.request.labels.batch-job-uid="{uid}" AND {window(sim_shared)}')
    assert len(found) == 10
    for entry in found:
        assert isinstance(entry, glog.ProtobufEntry)
        request = entry.payload["request"]
        assert request["@type"] == "type.googleapis.com/compute.instances.insert"
        assert request["confidentialInstanceConfig"] == {"enableConfidentialCompute": True,
                                                         "confidentialInstanceType": "SEV"}
        assert "accessConfigs" not in request["networkInterfaces"][0]
        assert entry.payload["authenticationInfo"]["principalEmail"] == "314159265358@cloudservices.gserviceaccount.com"
        assert entry.resource.type == "gce_instance"


def test_client_silently_limits_a_filter_without_timestamp_to_24_hours(sim_shared) -> None:
    """The earlier run three days ago is invisible unless the filter names a timestamp itself."""
    silent = entries(sim_shared, INSERT_FIRST)
    four_days = (datetime.now(UTC) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    explicit = entries(sim_shared, f'{INSERT_FIRST} AND timestamp>="{four_days}"')
    assert len(silent) == 10
    assert len(explicit) == 12
    assert {e.payload["request"]["labels"]["batch-job-id"] for e in explicit} == {
        "preprocess-genomes-001", "preprocess-genomes-000"}


def test_data_access_entries_record_each_task_output_and_manifest(sim_shared) -> None:
    found = entries(sim_shared, 'log_id("cloudaudit.googleapis.com/data_access") '
                                'protoPayload.methodName="storage.objects.create" '
                                f'resource.labels.bucket_name="fed-node-us-processed" AND {window(sim_shared)}')
    names = sorted(e.payload["resourceName"].rsplit("/objects/", 1)[1] for e in found)
    assert len(names) == 20
    assert names[:2] == ["manifests/preprocess-genomes-001/0.json", "manifests/preprocess-genomes-001/1.json"]
    assert {e.payload["authenticationInfo"]["principalEmail"] for e in found} == {
        "batch-runner@fed-node-us.iam.gserviceaccount.com"}


def test_has_operator_matches_substrings_where_equality_does_not(sim_factory) -> None:
    from sovaudit.simulator import audit_log, clock
    from sovaudit.simulator.projects import bucket_owner

    sim = sim_factory()
    # A write into a look-alike bucket the node's project owns (so it is in the node's log).
    sim.state.buckets["fed-node-us-processed-copy"] = dict(sim.state.buckets["fed-node-us-processed"],
                                                           name="fed-node-us-processed-copy")
    assert bucket_owner(sim.state, "fed-node-us-processed-copy").is_node
    seeded = sim.state.extras["seed"]
    audit_log.storage_object_access(sim.state, bucket="fed-node-us-processed-copy", object_name="x.parquet",
                                    principal="batch-runner@fed-node-us.iam.gserviceaccount.com",
                                    timestamp=clock.parse(seeded.window_start) + timedelta(minutes=30),
                                    location="us-central1")
    base = f'protoPayload.methodName="storage.objects.create" AND {window(sim)}'
    equal = entries(sim, f'{base} AND resource.labels.bucket_name="fed-node-us-processed"')
    has = entries(sim, f'{base} AND resource.labels.bucket_name:"fed-node-us-processed"')
    assert len(has) == len(equal) + 1
    extra = {e.resource.labels["bucket_name"] for e in has} - {e.resource.labels["bucket_name"] for e in equal}
    assert extra == {"fed-node-us-processed-copy"}


def test_descending_order_and_small_pages_return_every_entry(sim_shared) -> None:
    filter_ = f'{INSERT_FIRST} AND {window(sim_shared)}'
    ascending = entries(sim_shared, filter_)
    descending = entries(sim_shared, filter_, order_by=glog.DESCENDING, page_size=3)
    assert [e.insert_id for e in descending] == [e.insert_id for e in reversed(ascending)]
    assert [e.timestamp for e in ascending] == sorted(e.timestamp for e in ascending)


def test_page_token_is_bound_to_its_query(sim_shared) -> None:
    http = session()
    first = http.post(f"{sim_shared.url}/v2/entries:list",
                      json={"resourceNames": PROJECT, "filter": INSERT_FIRST, "pageSize": 2}).json()
    assert len(first["entries"]) == 2 and first["nextPageToken"]
    changed = http.post(f"{sim_shared.url}/v2/entries:list",
                        json={"resourceNames": PROJECT, "filter": "severity>=ERROR", "pageSize": 2,
                              "pageToken": first["nextPageToken"]})
    assert changed.status_code == 400


def test_written_entries_are_listed_back(sim) -> None:
    client = logging(sim.url)
    logger = client.logger("sovaudit-test")
    logger.log_struct({"step": "normalize", "records": 42}, severity="WARNING", labels={"run": "r1"})
    logger.log_text("plain line")
    found = list(client.list_entries(resource_names=PROJECT,
                                     filter_='log_id("sovaudit-test") AND jsonPayload.records>=40 '
                                             'AND labels.run="r1" AND severity=WARNING'))
    assert [e.payload["step"] for e in found] == ["normalize"]
    assert found[0].log_name == "projects/fed-node-us/logs/sovaudit-test"
    texts = list(client.list_entries(resource_names=PROJECT, filter_='textPayload:"plain"'))
    assert [e.payload for e in texts] == ["plain line"]


def test_invalid_filter_is_a_bad_request_naming_the_problem(sim_shared) -> None:
    with pytest.raises(exceptions.BadRequest, match="filter"):
        entries(sim_shared, 'protoPayload.methodName="unterminated')


def test_logs_of_another_project_are_forbidden(sim_shared) -> None:
    with pytest.raises(exceptions.Forbidden):
        list(logging(sim_shared.url).list_entries(resource_names=["projects/other"], filter_="timestamp>\"2026-01-01\""))


def test_data_access_logs_off_leaves_no_storage_entries_but_bigquery_ones(sim_factory) -> None:
    sim = sim_factory(scenarios=["data-access-logs-off"])
    storage = entries(sim, f'protoPayload.serviceName="storage.googleapis.com" '
                           f'log_id("cloudaudit.googleapis.com/data_access") {window(sim)}')
    bigquery = entries(sim, f'protoPayload.serviceName="bigquery.googleapis.com" '
                            f'log_id("cloudaudit.googleapis.com/data_access") {window(sim)}')
    assert storage == []
    # Each of the 10 load jobs: jobInsertion, tableDataChange and jobChange (BigQuery's are always on).
    assert len(bigquery) == 30
    events = sorted(next(k for k in e.payload["metadata"] if k != "@type") for e in bigquery)
    assert events == ["jobChange"] * 10 + ["jobInsertion"] * 10 + ["tableDataChange"] * 10


def test_vpcsc_violation_is_a_policy_denied_entry_in_the_job_window(sim_factory) -> None:
    sim = sim_factory(scenarios=["vpcsc-violation"])
    found = entries(sim, 'log_id("cloudaudit.googleapis.com/policy") AND protoPayload.metadata."@type"='
                         '"type.googleapis.com/google.cloud.audit.VpcServiceControlAuditMetadata" AND '
                         + window(sim, before=timedelta(0)))
    assert len(found) == 1
    metadata = found[0].payload["metadata"]
    # A worker (a VPC client inside) writing into a project outside: the reason the troubleshooting doc gives.
    assert metadata["violationReason"] == "NETWORK_NOT_IN_SAME_SERVICE_PERIMETER"
    assert metadata["securityPolicyInfo"]["servicePerimeterName"] == \
        "accessPolicies/555000111/servicePerimeters/fed_node_us"
    assert "dryRun" not in metadata
    assert found[0].payload["status"]["code"] == 7
    assert found[0].severity == "ERROR"


def test_batch_task_logs_carry_job_uid_and_task_labels(sim_shared) -> None:
    uid = sim_shared.state.extras["seed"].job_uid
    found = entries(sim_shared, f'logName="projects/fed-node-us/logs/batch_task_logs" AND labels.job_uid="{uid}" '
                                f'AND textPayload:"rows_loaded=" AND {window(sim_shared)}')
    assert len(found) == 10
    assert all(e.labels["task_id"].startswith(f"task/{uid}-group0-") for e in found)


def test_page_size_defaults_to_50_and_above_1000_is_refused(sim_shared) -> None:
    http = session()
    url = f"{sim_shared.url}/v2/entries:list"
    default = http.post(url, json={"resourceNames": PROJECT}).json()
    assert len(default["entries"]) == 50 and default["nextPageToken"]
    assert http.post(url, json={"resourceNames": PROJECT, "pageSize": 1001}).status_code == 400
    assert http.post(url, json={"resourceNames": PROJECT, "pageSize": -1}).status_code == 400


def test_a_question_pinned_to_a_log_by_its_first_conjunct_gets_what_the_full_scan_would() -> None:
    """entries.list tests only the entries of the logNames a filter's leading conjunct allows (an index,
    for speed on a busy log); the answer must be the one a scan of every entry gives."""
    from sovaudit.simulator.api.logging_api import _leading_log_names
    from sovaudit.simulator.logquery import compile_filter
    from sovaudit.simulator.server import load_seeded_state

    state = load_seeded_state("us", [], job_tasks=3)
    activity = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Factivity"
    data = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fdata_access"
    for text in (f'logName="{activity}" AND protoPayload.methodName:"insert"',
                 f'(logName="{activity}" OR logName="{data.upper()}") AND severity>=INFO',
                 f'logName="{data}" AND protoPayload.serviceName="storage.googleapis.com" OR severity=ERROR'):
        names = _leading_log_names(text)
        assert names is not None
        flt = compile_filter(text)
        scanned = [e for e in state.log_entries if flt.matches(e)]
        indexed = [e for e in state.log_entries if e["logName"].casefold() in names and flt.matches(e)]
        assert scanned and indexed == scanned, text
    assert _leading_log_names(f'logName="{activity}" OR severity=ERROR AND x') is None
