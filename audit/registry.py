"""The one registry of controls: `@control(id=...)` on a pure function, found again by id.

A control function takes a ControlContext and yields Findings; it knows nothing of HTTP. The
decorator records its metadata beside it, so `grep -rn 'id="SEC-04"'` lands on both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sovaudit.audit.models import ControlContext, ControlMeta, Finding, Pillar, Severity

ControlFunction = Callable[[ControlContext], Iterable[Finding]]
#: Why the signed policy pack makes a control not apply ('' when it applies). Asked before anything
#: else about the run (a job in scope, evidence), so a pack's choice reads the same in every run.
AppliesFunction = Callable[[ControlContext], str]

_ID = re.compile(r"^(SOV|CC|SEC|INT)-[0-9]{2}$")
_PILLAR_ORDER = {"SOV": 0, "CC": 1, "SEC": 2, "INT": 3}
_REGISTRY: dict[str, RegisteredControl] = {}


class DuplicateControl(RuntimeError):
    """Two functions claim one control id; ids are stable promises and must be unique."""


@dataclass(frozen=True)
class RegisteredControl:
    meta: ControlMeta
    check: ControlFunction
    not_applicable: AppliesFunction | None = None


def control(
    *,
    id: str,
    pillar: Pillar,
    severity: Severity,
    title: str,
    rationale: str,
    remediation: str,
    frameworks: Mapping[str, Sequence[str]],
    reads: Sequence[str],
    needs_job: bool = False,
    probe: bool = False,
    not_applicable: AppliesFunction | None = None,
) -> Callable[[ControlFunction], ControlFunction]:
    """Register `check` as control `id` with its metadata; a second registration of `id` is an error."""
    if not _ID.match(id):
        raise ValueError(f"control id {id!r} must look like SOV-01, CC-02, SEC-04 or INT-01")

    def register(check: ControlFunction) -> ControlFunction:
        existing = _REGISTRY.get(id)
        if existing is not None:
            raise DuplicateControl(
                f"control {id} is registered twice: {existing.check.__module__}.{existing.check.__qualname__} "
                f"and {check.__module__}.{check.__qualname__}; give the new control a new id"
            )
        meta = ControlMeta(
            id=id, title=title, pillar=pillar, severity=severity, rationale=rationale,
            remediation=remediation, frameworks={k: tuple(v) for k, v in frameworks.items()},
            reads=tuple(reads), needs_job=needs_job, probe=probe,
        )
        _REGISTRY[id] = RegisteredControl(meta, check, not_applicable)
        return check

    return register


def _load_catalogue() -> None:
    # The catalogue registers itself on import; importing here keeps callers from forgetting it.
    import sovaudit.audit.controls  # noqa: F401


def _order(control_id: str) -> tuple[int, int]:
    prefix, number = control_id.split("-")
    return _PILLAR_ORDER[prefix], int(number)


def all_controls() -> list[RegisteredControl]:
    """Every registered control, in catalogue order (SOV, CC, SEC, INT; by number)."""
    _load_catalogue()
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=_order)]


def get(control_id: str) -> RegisteredControl:
    _load_catalogue()
    try:
        return _REGISTRY[control_id]
    except KeyError:
        raise KeyError(f"no control {control_id!r}; known: {', '.join(sorted(_REGISTRY, key=_order))}") from None
