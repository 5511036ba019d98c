"""The list-filter evaluator behind Compute's `filter` and Batch's ListJobs `filter` (simulator/aip160.py).

The client-level cases live in test_compute.py; these pin the evaluation rules that are easy to get
subtly wrong: precedence, whole-field regex, typed comparisons, presence of empty values.
"""

from __future__ import annotations

import pytest

from sovaudit.simulator.aip160 import FilterError, parse_filter

VM = {
    "name": "j-1-group0-0-abcd",
    "id": "1700000000000000123",
    "status": "RUNNING",
    "labels": {"batch-job-uid": "j-1", "batch-node": ""},
    "scheduling": {"automaticRestart": False, "provisioningModel": "SPOT"},
    "networkInterfaces": [{"networkIP": "10.20.0.7"}, {"networkIP": "10.20.0.8",
                                                      "accessConfigs": [{"natIP": "34.1.2.3"}]}],
    "status_events": [],
}
JOB = {"name": "projects/1/locations/us-central1/jobs/a", "createTime": "2026-11-26T10:00:00Z",
       "status": {"state": "SUCCEEDED"}, "labels": {"pipeline": "genomics-preproc"}}


@pytest.mark.parametrize(("text", "expected"), [
    ("", True),
    ("labels.batch-node:*", True),            # present with an empty value is still present
    ('labels.batch-node = ""', True),
    ("labels.owner:*", False),
    ("labels.owner != x", True),              # an absent field is unequal to anything
    ("status = RUNNING OR status = STOPPED AND name:zzz", False),   # OR binds tighter than AND
    ("(status = RUNNING OR status = STOPPED) AND -name:zzz", True),
    ("status = running", False),              # values are case-sensitive
    ("id > 1700000000000000100", True),       # int64 ids travel as strings, compare as numbers
    ("id = 1700000000000000123", True),
    ("networkInterfaces.networkIP = 10.20.0.8", True),   # any element of a repeated field
    ("networkInterfaces.accessConfigs.natIP:*", True),
    ("scheduling.automaticRestart = false AND scheduling.provisioningModel = SPOT", True),
    ("scheduling.automaticRestart = true", False),
    ('name = "j-1-group0-*"', True),          # AIP-160 wildcard
    ("name eq j-1-group0-0", False),          # RE2 must match the whole value
    ("name eq 'j-1-group0-.*'", True),
    ("name ne 'j-1-group0-.*'", False),
    ("(name eq 'j-.*') (status eq RUN.*)", True),
    ('labels.batch-job-uid eq "j-[0-9]"', True),
])
def test_compute_filter_evaluation(text: str, expected: bool) -> None:
    assert parse_filter(text).matches(VM) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ('status.state="SUCCEEDED"', True),
    ('labels.pipeline="genomics-preproc" AND status.state="FAILED"', False),
    ('create_time>"2026-11-26T09:00:00Z"', True),   # Batch names fields in snake_case
])
def test_batch_list_filter_evaluation(text: str, expected: bool) -> None:
    assert parse_filter(text).matches(JOB) is expected


@pytest.mark.parametrize(("text", "message"), [
    ("name eq a status = RUNNING", "cannot be mixed"),
    ("(name eq a) OR (name eq b)", "without AND/OR/NOT"),
    ("name = ", "Invalid list filter expression"),
    ("name eq '('", "not valid RE2"),
])
def test_bad_filters_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message) as error:
        parse_filter(text)
    assert "filter" in str(error.value)


def test_regex_and_aip_forms_are_told_apart() -> None:
    assert parse_filter("name eq x").form == "regex"
    assert parse_filter("name = x").form == "aip160"
    assert parse_filter("  ").form == "empty"
