"""Time as each Google API spells it.

The APIs disagree on format, and clients parse what they get: Logging, Batch and Org Policy use
RFC 3339 UTC with `Z`; Compute uses RFC 3339 with a Pacific offset (`-08:00`), as its servers do;
BigQuery uses epoch milliseconds as strings; Storage uses RFC 3339 with milliseconds and `Z`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta, timezone

_PACIFIC = timezone(timedelta(hours=-8), "PST")
# Scenario actions replay an insider's API calls at a moment inside the recorded run's window; the
# handlers they go through must stamp their audit entries and resources with that moment, not "now".
_PINNED: ContextVar[datetime | None] = ContextVar("sovaudit_sim_pinned_now", default=None)


def now() -> datetime:
    pinned = _PINNED.get()
    return pinned if pinned is not None else datetime.now(UTC)


@contextmanager
def pinned(moment: datetime) -> Iterator[None]:
    """Within the block (this thread only), `now()` answers `moment`."""
    token = _PINNED.set(moment.astimezone(UTC))
    try:
        yield
    finally:
        _PINNED.reset(token)


def rfc3339(moment: datetime) -> str:
    """Logging / Batch style: microseconds, UTC, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_millis(moment: datetime) -> str:
    """Storage style: milliseconds, UTC, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def compute_timestamp(moment: datetime) -> str:
    """Compute style: milliseconds with the -08:00 offset (e.g. `creationTimestamp`)."""
    local = moment.astimezone(_PACIFIC)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}-08:00"


def epoch_millis(moment: datetime) -> str:
    """BigQuery style: epoch milliseconds as a decimal string."""
    return str(int(moment.timestamp() * 1000))


def parse(text: str) -> datetime:
    """Parse any RFC 3339 form the APIs above produce (and `Z`), to an aware UTC datetime."""
    value = text.strip().replace("z", "Z")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    if "." in value:   # Python < 3.11-style parsers choke on nanoseconds; keep microseconds
        head, _, tail = value.partition(".")
        # Only the fraction's own digits: an offset's (`-08:00`, Compute's style) must stay an offset.
        digits = tail[:len(tail) - len(tail.lstrip("0123456789"))]
        offset = tail[len(digits):]
        value = f"{head}.{digits[:6].ljust(6, '0')}{offset}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
