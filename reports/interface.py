"""The one interface every report format implements, and the error they all raise.

A format turns the result.json dict (docs/result-schema.md) into the bytes of one file. Formats take
the dict, never the engine's model classes, so that `sovaudit report render RESULT_JSON` re-renders any
stored result, years later, with no engine in the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

RESULT_SCHEMA = "sovaudit/result/v1"
OUTCOMES = ("PASS", "FAIL", "ERROR", "WAIVED", "NOT_APPLICABLE", "SKIPPED")


class FormatError(Exception):
    """The result dict cannot be rendered; the message names the field and what was expected."""


class ResultFormat(ABC):
    """One output format of a run's result."""

    #: short name used on the command line (`--format html`)
    name: str = ""
    #: file name inside a run bundle (`report.html`)
    file_name: str = ""
    #: media type, for anyone serving the file
    media_type: str = "application/octet-stream"

    @abstractmethod
    def render(self, result: Mapping[str, Any]) -> bytes:
        """Render the whole result as the bytes of one file; raise FormatError on a malformed result."""


def check_result(result: Mapping[str, Any]) -> None:
    """Fail early, naming the field, when a dict is not a sovaudit/result/v1 document.

    Renderers read many nested fields; one up-front check gives a clear message instead of a
    KeyError deep inside a template.
    """
    if not isinstance(result, Mapping):
        raise FormatError(f"result must be a JSON object, got {type(result).__name__}")
    schema = result.get("schema")
    if schema != RESULT_SCHEMA:
        raise FormatError(f"result field 'schema' is {schema!r}; expected {RESULT_SCHEMA!r}")
    for key in ("run_id", "verdict", "controls"):
        if key not in result:
            raise FormatError(f"result is missing the field {key!r} (see docs/result-schema.md)")
    controls = result["controls"]
    if not isinstance(controls, list):
        raise FormatError("result field 'controls' must be a list")
    for index, control in enumerate(controls):
        if not isinstance(control, Mapping):
            raise FormatError(f"result field 'controls[{index}]' must be an object")
        for key in ("id", "outcome"):
            if key not in control:
                raise FormatError(f"result field 'controls[{index}]' is missing {key!r}")
        if control["outcome"] not in OUTCOMES:
            raise FormatError(
                f"result field 'controls[{index}].outcome' is {control['outcome']!r}; "
                f"expected one of {', '.join(OUTCOMES)}"
            )
        _check_control_shape(control, f"controls[{index}]")
    for name in ("policy", "tool", "scope", "summary"):
        _expect(result.get(name), Mapping, name, "an object")
    _expect(result.get("probes"), list, "probes", "a list")
    for index, probe in enumerate(result.get("probes") or []):
        _expect(probe, Mapping, f"probes[{index}]", "an object")
        _expect(probe.get("evidence"), list, f"probes[{index}].evidence", "a list")


def _expect(value: Any, kind: type | tuple[type, ...], field: str, described: str) -> None:
    # Optional fields may be absent or null; present ones must have the shape the renderers read, so a
    # hand-edited or hostile result.json is refused with the field named instead of crashing a template.
    if value is not None and not isinstance(value, kind):
        raise FormatError(f"result field '{field}' must be {described}, got {type(value).__name__}")


def _check_control_shape(control: Mapping[str, Any], where: str) -> None:
    for key in ("id", "title", "pillar", "severity", "rationale", "remediation"):
        _expect(control.get(key), str, f"{where}.{key}", "a string")
    _expect(control.get("frameworks"), Mapping, f"{where}.frameworks", "an object of lists")
    for framework, references in (control.get("frameworks") or {}).items():
        _expect(references, list, f"{where}.frameworks.{framework}", "a list")
    _expect(control.get("evidence"), list, f"{where}.evidence", "a list")
    _expect(control.get("waiver"), Mapping, f"{where}.waiver", "an object or null")
    _expect(control.get("findings"), list, f"{where}.findings", "a list")
    for index, finding in enumerate(control.get("findings") or []):
        _expect(finding, Mapping, f"{where}.findings[{index}]", "an object")
        _expect(finding.get("evidence"), list, f"{where}.findings[{index}].evidence", "a list")
