"""The simulator's Logging query language: parser, evaluator and ordering.

Each filter case runs against the same small set of realistic LogEntry JSON objects
(keyed by a short name) and states exactly which of them must match.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud.logging_v2._helpers import _add_defaults_to_filter

from sovaudit.simulator.logquery import LogQueryError, compile_filter, sort_entries

AUDIT_LOG = "type.googleapis.com/google.cloud.audit.AuditLog"
ACTIVITY = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Factivity"
DATA_ACCESS = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fdata_access"
POLICY = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fpolicy"
JOB_UID = "preprocess-genomes-001-3f9a1c2b-0000-4000-8000-000000000001"


def _insert_entry(vm: str, zone: str, sev: bool, ts: str, insert_id: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "@type": "type.googleapis.com/compute.instances.insert",
        "name": vm,
        "machineType": f"https://www.googleapis.com/compute/v1/projects/fed-node-us/zones/{zone}/machineTypes/n2d-standard-4",
        "networkInterfaces": [{
            "subnetwork": "projects/fed-node-us/regions/us-central1/subnetworks/fed-node-us-compute-subnet",
        }],
        "serviceAccounts": [{"email": "batch-runner@fed-node-us.iam.gserviceaccount.com"}],
        "labels": {"batch-job-uid": JOB_UID, "batch-node": "true"},
    }
    if sev:
        request["confidentialInstanceConfig"] = {"enableConfidentialCompute": True,
                                                 "confidentialInstanceType": "SEV"}
    else:
        request["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
    return {
        "logName": ACTIVITY,
        "resource": {"type": "gce_instance",
                     "labels": {"instance_id": "6731710280662790612", "project_id": "fed-node-us", "zone": zone}},
        "timestamp": ts,
        "receiveTimestamp": ts,
        "severity": "NOTICE",
        "insertId": insert_id,
        "labels": {"compute.googleapis.com/root_trigger_id": "7c1e9d1a-5a3f-4bde-9d9e-1f1f1f1f1f1f"},
        "operation": {"id": f"operation-{insert_id}", "producer": "compute.googleapis.com", "first": True},
        "protoPayload": {
            "@type": AUDIT_LOG,
            "authenticationInfo": {"principalEmail": "batch-runner@fed-node-us.iam.gserviceaccount.com"},
            "requestMetadata": {"callerIp": "10.128.0.7", "callerSuppliedUserAgent": "batch-agent"},
            "serviceName": "compute.googleapis.com",
            "methodName": "v1.compute.instances.insert",
            "authorizationInfo": [
                {"permission": "compute.instances.create", "granted": True,
                 "resourceAttributes": {"service": "compute", "name": f"projects/fed-node-us/zones/{zone}/instances/{vm}"}},
                {"permission": "compute.subnetworks.use", "granted": True},
                {"permission": "compute.instances.setServiceAccount", "granted": True},
            ],
            "resourceName": f"projects/fed-node-us/zones/{zone}/instances/{vm}",
            "request": request,
            "response": {"@type": "type.googleapis.com/operation", "status": "RUNNING",
                         "user": "batch-runner@fed-node-us.iam.gserviceaccount.com"},
            "resourceLocation": {"currentLocations": [zone]},
        },
    }


def _object_create(bucket: str, obj: str, ts: str, insert_id: str) -> dict[str, Any]:
    return {
        "logName": DATA_ACCESS,
        "resource": {"type": "gcs_bucket",
                     "labels": {"bucket_name": bucket, "location": "us-central1", "project_id": "fed-node-us"}},
        "timestamp": ts,
        "receiveTimestamp": ts,
        "severity": "INFO",
        "insertId": insert_id,
        "protoPayload": {
            "@type": AUDIT_LOG,
            "status": {},
            "authenticationInfo": {"principalEmail": "batch-runner@fed-node-us.iam.gserviceaccount.com"},
            "serviceName": "storage.googleapis.com",
            "methodName": "storage.objects.create",
            "authorizationInfo": [{"resource": f"projects/_/buckets/{bucket}/objects/{obj}",
                                   "permission": "storage.objects.create", "granted": True}],
            "resourceName": f"projects/_/buckets/{bucket}/objects/{obj}",
            "numResponseItems": "12",
            "resourceLocation": {"currentLocations": ["us-central1"]},
        },
    }


ENTRIES: dict[str, dict[str, Any]] = {
    "insert_sev": _insert_entry("preprocess-genomes-001-group0-0-a1b2", "us-central1-a", True,
                                "2026-11-26T16:10:00.123456789Z", "ins-1"),
    "insert_nosev": _insert_entry("rogue-vm", "us-central1-f", False,
                                  "2026-11-26T17:10:00+01:00", "ins-2"),
    "write_processed": _object_create("fed-node-us-processed", "manifests/preprocess-genomes-001/manifest.json",
                                      "2026-11-26T16:20:00Z", "obj-1"),
    "write_foreign": _object_create("x-fed-node-us-y", "leak/sample.vcf.gz", "2026-11-27T09:00:00Z", "obj-2"),
    "vpcsc_denied": {
        "logName": POLICY,
        "resource": {"type": "audited_resource",
                     "labels": {"service": "storage.googleapis.com", "method": "google.storage.objects.create",
                                "project_id": "fed-node-us"}},
        "timestamp": "2026-11-26T16:30:00.5Z",
        "severity": "ERROR",
        "insertId": "pol-1",
        "protoPayload": {
            "@type": AUDIT_LOG,
            "status": {"code": 7, "message": "Request is prohibited by organization's policy. "
                                             "vpcServiceControlsUniqueIdentifier: UID-42",
                       "details": [{"@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                                    "violations": [{"type": "VPC_SERVICE_CONTROLS", "description": "UID-42"}]}]},
            "serviceName": "storage.googleapis.com",
            "methodName": "google.storage.objects.create",
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.audit.VpcServiceControlAuditMetadata",
                "violationReason": "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER",
                "resourceNames": ["projects/_/buckets/eu-bucket"],
                "securityPolicyInfo": {"servicePerimeterName": "accessPolicies/555000111/servicePerimeters/fed_node_us",
                                       "organizationId": "161803398874"},
                "vpcServiceControlsUniqueId": "UID-42",
            },
        },
    },
    "task_log": {
        "logName": "projects/fed-node-us/logs/batch_task_logs",
        "resource": {"type": "generic_task", "labels": {"job": "preprocess-genomes-001", "location": "us-central1"}},
        "timestamp": "2026-11-26T16:15:00Z",
        "insertId": "task-1",
        "labels": {"job_uid": JOB_UID, "task_id": "task/preprocess-genomes-001-group0-0/0/0"},
        "textPayload": "normalize: wrote 1200 records to gs://fed-node-us-processed/out/sovaudit_HG002.vcf.gz",
    },
    "json_log": {
        "logName": "projects/fed-node-us/logs/pipeline",
        "resource": {"type": "global", "labels": {}},
        "timestamp": "2026-11-26T16:16:00Z",
        "severity": "WARNING",
        "insertId": "json-1",
        "jsonPayload": {"message": "Retrying upload", "shoeSize": [8.5, 9, 6], "retries": 3,
                        "done": False, "note": None, "Case": "Upper"},
    },
}


def matching(filter_text: str) -> set[str]:
    flt = compile_filter(filter_text)
    return {name for name, entry in ENTRIES.items() if flt.matches(entry)}


ALL = set(ENTRIES)
INSERTS = {"insert_sev", "insert_nosev"}
WRITES = {"write_processed", "write_foreign"}
AUDIT = INSERTS | WRITES | {"vpcsc_denied"}


CASES = [
    # -- boolean structure and precedence (NOT > OR > AND) ------------------------------------
    ("precedence_or_binds_tighter_than_and",
     'resource.type="gcs_bucket" OR resource.type="gce_instance" AND severity=NOTICE', INSERTS),
    ("doc_example_a_or_not_b_and_not_c_or_d",
     'logName:batch_task OR NOT severity>=DEBUG AND NOT resource.type=gce_instance OR severity=NOTICE',
     {"task_log"}),
    ("explicit_parentheses_override", 'resource.type="gcs_bucket" OR (resource.type="gce_instance" AND severity=ERROR)',
     WRITES),
    ("implicit_and_by_juxtaposition", 'resource.type=gcs_bucket resource.labels.bucket_name="fed-node-us-processed"',
     {"write_processed"}),
    ("minus_prefix_is_not", 'protoPayload.serviceName="storage.googleapis.com" -logName:policy', WRITES),
    ("not_keyword", 'protoPayload:* AND NOT protoPayload.methodName:insert', WRITES | {"vpcsc_denied"}),
    ("double_negation", "NOT NOT severity=ERROR", {"vpcsc_denied"}),
    ("comment_ignored_to_end_of_line", 'severity=ERROR -- OR severity=INFO\n', {"vpcsc_denied"}),
    ("empty_filter_matches_all", "   ", ALL),
    ("lowercase_and_is_a_search_term", "severity=INFO and", set()),
    # -- ':' versus '=' --------------------------------------------------------------------------
    ("has_is_substring_not_prefix", "resource.labels.bucket_name:fed-node-us", WRITES),
    ("equals_is_whole_value", 'resource.labels.bucket_name="fed-node-us"', set()),
    ("equals_ignores_case", 'resource.labels.bucket_name="FED-NODE-US-PROCESSED"', {"write_processed"}),
    ("has_ignores_case", 'protoPayload.methodName:"INSTANCES.INSERT"', INSERTS),
    ("not_equals_on_present_field", 'protoPayload.methodName!="storage.objects.create" AND protoPayload:*',
     INSERTS | {"vpcsc_denied"}),
    ("has_on_object_searches_leaves", 'protoPayload.request:"fed-node-us-compute-subnet"', INSERTS),
    ("value_group_or", 'resource.type=("gcs_bucket" OR audited_resource)', WRITES | {"vpcsc_denied"}),
    ("value_group_implicit_and", "textPayload:(wrote records)", {"task_log"}),
    ("value_group_and_not", 'resource.labels.bucket_name:(fed AND NOT "x-")', {"write_processed"}),
    # -- regular expressions ---------------------------------------------------------------------
    ("regex_unanchored_search", 'resource.labels.zone=~"central1-[af]"', INSERTS),
    ("regex_anchored", 'resource.labels.bucket_name=~"^fed-node-us-"', {"write_processed"}),
    ("regex_is_case_sensitive", 'protoPayload.methodName=~"INSERT"', set()),
    ("regex_inline_flag", 'protoPayload.methodName=~"(?i)INSERT$"', INSERTS),
    ("regex_not_match_requires_field", 'resource.labels.bucket_name!~"^fed-"', {"write_foreign"}),
    ("regex_log_name_escaped_slash", r'logName=~"cloudaudit\\.googleapis\\.com%2F(activity|policy)$"',
     INSERTS | {"vpcsc_denied"}),
    ("regex_re2_named_group", 'resource.labels.zone=~"(?<region>us-central1)-f"', {"insert_nosev"}),
    ("regex_value_group", 'resource.labels.bucket_name=~("^x-" OR "processed$")', WRITES),
    # -- field paths -------------------------------------------------------------------------------
    ("quoted_segment_at_type",
     'protoPayload.metadata."@type"="type.googleapis.com/google.cloud.audit.VpcServiceControlAuditMetadata"',
     {"vpcsc_denied"}),
    ("quoted_label_key_with_slash", 'labels."compute.googleapis.com/root_trigger_id":*', INSERTS),
    ("hyphenated_struct_key", f'protoPayload.request.labels.batch-job-uid="{JOB_UID}"', INSERTS),
    ("nested_bool_true", "protoPayload.request.confidentialInstanceConfig.enableConfidentialCompute=true",
     {"insert_sev"}),
    ("presence_of_nested_object", "protoPayload.request.confidentialInstanceConfig:*", {"insert_sev"}),
    ("absence_via_not_presence", "protoPayload.methodName:insert NOT protoPayload.request.confidentialInstanceConfig:*",
     {"insert_nosev"}),
    ("array_of_objects_any_element", 'protoPayload.authorizationInfo.permission="storage.objects.create"', WRITES),
    ("array_nested_in_array", 'protoPayload.status.details.violations.type="VPC_SERVICE_CONTROLS"',
     {"vpcsc_denied"}),
    ("array_of_numbers_any_element", "jsonPayload.shoeSize < 7", {"json_log"}),
    ("array_elements_all_fail", "jsonPayload.shoeSize > 9", set()),
    ("proto_field_snake_case_alias", 'protoPayload.method_name="v1.compute.instances.insert"', INSERTS),
    ("string_equality_uses_nfkc_case_folding", 'jsonPayload.message="ＲＥＴＲＹＩＮＧ upload"', {"json_log"}),
    ("struct_keys_are_case_sensitive", 'jsonPayload.case="Upper"', set()),
    ("struct_key_exact_case", 'jsonPayload.Case="upper"', {"json_log"}),
    # -- missing and defaulted fields ------------------------------------------------------------
    ("missing_field_comparison_false", 'protoPayload.request.name="rogue-vm"', {"insert_nosev"}),
    ("missing_field_not_equal_is_false", 'jsonPayload.nearest_store!="x"', set()),
    ("not_on_missing_field_is_true", 'NOT jsonPayload.nearest_store="x"', ALL),
    ("defaulted_severity_is_default", "severity=DEFAULT", {"task_log"}),
    ("defaulted_operation_first_false", "operation.first=false", ALL - INSERTS),
    ("presence_ignores_defaults", "operation.first:*", INSERTS),
    ("json_null_value", "jsonPayload.note=NULL_VALUE", {"json_log"}),
    ("not_null_value", "jsonPayload:* NOT jsonPayload.note=NULL_VALUE", set()),
    # -- typed values --------------------------------------------------------------------------
    ("severity_rank_at_least_warning", "severity>=WARNING", {"vpcsc_denied", "json_log"}),
    ("severity_name_case_insensitive", 'severity>"info" severity<error', {"insert_sev", "insert_nosev", "json_log"}),
    ("severity_numeric_value", "severity=500", {"vpcsc_denied"}),
    ("number_compares_numerically", "protoPayload.status.code>=7 AND protoPayload.status.code<10", {"vpcsc_denied"}),
    ("number_quoted_converted", 'jsonPayload.retries="3"', {"json_log"}),
    ("int64_string_compares_numerically", "protoPayload.numResponseItems>9", WRITES),
    ("int64_ids_compare_exactly", "resource.labels.instance_id=6731710280662790613", set()),
    ("int64_ids_equal", "resource.labels.instance_id=6731710280662790612", INSERTS),
    ("has_on_logentry_message", "resource:fed-node-us-processed", {"write_processed"}),
    ("bool_false", "jsonPayload.done=FALSE", {"json_log"}),
    ("bool_conversion_failure_is_false", "jsonPayload.done=maybe", set()),
    # -- timestamps ------------------------------------------------------------------------------
    ("timestamp_window", 'timestamp>="2026-11-26T16:10:00Z" AND timestamp<"2026-11-26T16:20:00Z"',
     {"insert_sev", "task_log", "json_log", "insert_nosev"}),
    ("timestamp_offset_is_an_instant", 'timestamp="2026-11-26T16:10:00Z"', {"insert_nosev"}),
    ("timestamp_nanoseconds", 'timestamp>"2026-11-26T16:10:00.123456788Z" timestamp<"2026-11-26T16:10:00.12345679Z"',
     {"insert_sev"}),
    ("timestamp_date_only_is_midnight_utc", 'timestamp>="2026-11-27"', {"write_foreign"}),
    ("timestamp_offset_query", 'timestamp<"2026-11-26T11:15:30-05:00"',
     {"insert_sev", "insert_nosev", "task_log"}),
    # -- functions and global restrictions ------------------------------------------------------
    ("log_id_activity", 'log_id("cloudaudit.googleapis.com/activity")', INSERTS),
    ("log_id_plain", "LOG_ID(batch_task_logs)", {"task_log"}),
    ("log_id_combined_with_or", 'log_id("cloudaudit.googleapis.com/policy") OR log_id("cloudaudit.googleapis.com/data_access")',
     WRITES | {"vpcsc_denied"}),
    ("unquoted_log_name_as_logger_list_entries_builds_it",
     "severity<=INFO AND logName=projects/fed-node-us/logs/batch_task_logs", {"task_log"}),
    ("negated_global_restriction", '-"fed-node-us" NOT pipeline', set()),
    ("global_restriction_quoted", '"UID-42"', {"vpcsc_denied"}),
    ("global_restriction_substring_any_field", "sovaudit", {"task_log"}),
    ("search_whole_tokens", 'SEARCH("HG002")', {"task_log"}),
    ("search_not_substring", 'SEARCH("HG00")', set()),
    ("search_field_all_tokens", 'SEARCH(textPayload, "records normalize")', {"task_log"}),
    ("search_percent_escape_is_not_a_delimiter", 'SEARCH("2Fpolicy")', {"vpcsc_denied"}),
    ("search_backtick_phrase", 'SEARCH("`wrote 1200 records`")', {"task_log"}),
    ("search_backtick_phrase_order", 'SEARCH("`records 1200`")', set()),
    ("ip_in_net", 'ip_in_net(protoPayload.requestMetadata.callerIp, "10.128.0.0/20")', INSERTS),
    ("sample_fraction_one_keeps_all_with_field", "sample(insertId, 1)", ALL),
]


@pytest.mark.parametrize(("filter_text", "expected"), [(f, e) for _, f, e in CASES], ids=[c[0] for c in CASES])
def test_filter_selects_exactly_the_expected_entries(filter_text: str, expected: set[str]) -> None:
    assert matching(filter_text) == expected


def test_client_24_hour_clause_is_parsed_and_applied() -> None:
    # The exact string google-cloud-logging builds when "timestamp" is absent from filter_.
    added = _add_defaults_to_filter('resource.type="gcs_bucket" OR resource.type="gce_instance"')
    assert added.startswith('resource.type="gcs_bucket" OR resource.type="gce_instance" AND timestamp>="')
    assert added.endswith('+0000"')  # %z: no colon in the offset
    flt = compile_filter(added)
    now = datetime.now(UTC)
    recent_gce = {**ENTRIES["insert_sev"], "timestamp": (now - timedelta(hours=1)).isoformat()}
    old_gcs = {**ENTRIES["write_processed"], "timestamp": (now - timedelta(hours=30)).isoformat()}
    recent_other = {**ENTRIES["vpcsc_denied"], "timestamp": now.isoformat()}
    # Google's precedence makes this (gcs OR gce) AND recent: the old gcs entry must not leak
    # through the OR, as it would with the usual AND-before-OR reading.
    assert [flt.matches(e) for e in (recent_gce, old_gcs, recent_other)] == [True, False, False]


def test_client_clause_on_empty_filter_is_a_syntax_error_naming_the_cause() -> None:
    with pytest.raises(LogQueryError, match=r"unexpected 'AND' at column 2.*filter_=None"):
        compile_filter(_add_defaults_to_filter(""))


@pytest.mark.parametrize(
    ("filter_text", "message"),
    [
        ('resource.type = "gce")', r"unexpected '\)' at column 22"),
        ("(severity=ERROR", r"unexpected end of filter at column 16.*unbalanced"),
        ('logName="projects/p', r"unterminated string starting at column 9"),
        ("insertId = abc:def", r"unexpected ':' at column 15"),
        ("severity>=ERROR AND", r"unexpected end of filter at column 20"),
        ("severity=ERROR OR OR x", r"unexpected 'OR' at column 19"),
        ("a.b=c\n  AND )", r"unexpected '\)' at line 2, column 7"),
        ("thud=1", r"undefined field 'thud' at column 1"),
        ("textPayload.thud=1", r"undefined field 'textPayload.thud'"),
        ("operation.thud=1", r"undefined field 'operation.thud'"),
        ("severity>=WARN", r"unknown severity 'WARN' at column 11"),
        ('timestamp>="yesterday"', r"invalid timestamp 'yesterday'"),
        ('jsonPayload.x=~"(unclosed"', r"invalid regular expression .* at column 16"),
        ('jsonPayload.x=~"a(?=b)"', r"lookaround or a backreference"),
        ('cast(timestamp, STRING)', r"cast\(\) at column 1 is not supported"),
        ('frobnicate("x")', r"unknown function frobnicate\(\)"),
        ('SEARCH(unquoted)', r"quoted string literal"),
        ('sample(insertId, 2)', r"fraction must be a number in \(0, 1\]"),
        ("jsonPayload.x = -abc", r"starting with '-' must be a number or quoted"),
        ("severity=*", r"'\*' is only valid after ':'"),
        ("x" * 20_001, r"at most 20000"),
    ],
)
def test_invalid_filter_raises_with_position(filter_text: str, message: str) -> None:
    with pytest.raises(LogQueryError, match=message):
        compile_filter(filter_text)


def test_syntax_error_carries_column() -> None:
    with pytest.raises(LogQueryError) as info:
        compile_filter('resource.type = "gce")')
    assert info.value.column == 22
    assert isinstance(info.value, ValueError)


def test_matches_tolerates_odd_entries() -> None:
    flt = compile_filter('protoPayload.request.name:vm AND severity>=INFO AND timestamp>="2026-01-01"')
    odd = [{}, {"protoPayload": "text"}, {"protoPayload": {"request": [1, None, {"name": 5}]}},
           {"severity": None, "timestamp": 17}, {"severity": float("nan"), "timestamp": "9999-99-99"},
           {"protoPayload": {"request": {"name": "vm"}}, "severity": "1e999", "timestamp": "2026-13-01"}]
    assert [flt.matches(e) for e in odd] == [False] * len(odd)


def test_filter_is_frozen_and_reusable() -> None:
    flt = compile_filter("severity=ERROR")
    with pytest.raises(AttributeError):
        flt.text = "x"  # type: ignore[misc]
    assert flt.select(ENTRIES.values()) == [ENTRIES["vpcsc_denied"]]
    assert flt.select(ENTRIES.values()) == [ENTRIES["vpcsc_denied"]]


def _stamped(ts: str, insert_id: str) -> dict[str, str]:
    return {"timestamp": ts, "insertId": insert_id}


SORT_INPUT = [
    _stamped("2026-11-26T16:00:00.5Z", "c"),
    _stamped("2026-11-26T17:00:00+01:00", "b"),  # same instant as 16:00:00Z
    _stamped("2026-11-26T16:00:00Z", "a"),
    _stamped("2026-11-25T23:59:59.999999999Z", "z"),
]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [(None, ["z", "a", "b", "c"]), ("timestamp asc", ["z", "a", "b", "c"]),
     ("timestamp desc", ["c", "b", "a", "z"]), ("  TIMESTAMP   DESC ", ["c", "b", "a", "z"])],
)
def test_sort_entries_by_instant_then_insert_id(order_by: str | None, expected: list[str]) -> None:
    assert [e["insertId"] for e in sort_entries(SORT_INPUT, order_by)] == expected


def test_sort_entries_rejects_other_orders() -> None:
    with pytest.raises(LogQueryError, match="timestamp asc"):
        sort_entries(SORT_INPUT, "severity desc")


def test_bulk_select_over_100k_entries_keeps_exactly_the_window() -> None:
    # Correctness of the fast path the simulator uses for 1000-VM jobs; its speed is a benchmark
    # (bench/sim_throughput.py), not a timed assertion here.
    base = ENTRIES["insert_sev"]
    entries = []
    for i in range(100_000):
        entry = dict(base)
        entry["timestamp"] = f"2026-11-26T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"
        entry["insertId"] = f"ins-{i}"
        entries.append(entry)
    flt = compile_filter(
        'log_id("cloudaudit.googleapis.com/activity") AND protoPayload.methodName:"compute.instances.insert" '
        'AND resource.labels.zone:us-central1 AND timestamp>="2026-11-26T00:00:00Z" '
        'AND timestamp<"2026-11-26T12:00:00Z"'
    )
    selected = flt.select(entries)
    assert len(selected) == sum(1 for i in range(100_000) if i // 3600 % 24 < 12)
    assert [e for e in entries if flt.matches(e)] == selected
