"""The task writes the manifest INT-01 reads: the two sides of that contract must not drift.

The verifier deliberately does not import the pipeline (it judges manifests it did not write), so
the field list lives twice; this test is what keeps the copies equal.
"""

from dataclasses import fields

from sovaudit.audit.views import MANIFEST_FIELDS
from sovaudit.pipeline.task import TaskReport


def test_task_report_starts_with_exactly_the_fields_int01_reads() -> None:
    written = [f.name for f in fields(TaskReport)]
    assert tuple(written[: len(MANIFEST_FIELDS)]) == MANIFEST_FIELDS
