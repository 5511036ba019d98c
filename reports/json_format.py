"""result.json: the machine-readable result, in one canonical serialisation.

Canonical (sorted keys, fixed indentation, UTF-8, trailing newline) so that the same result always
yields the same bytes, and so the same sha256 in the attestation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sovaudit.reports.interface import FormatError, ResultFormat, check_result


def canonical_json(document: Any) -> bytes:
    """The bytes sovaudit writes for any JSON document it produces (result, manifest, statement)."""
    try:
        text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"document is not plain JSON: {exc}") from exc
    return text.encode("utf-8") + b"\n"


class JsonFormat(ResultFormat):
    name = "json"
    file_name = "result.json"
    media_type = "application/json"

    def render(self, result: Mapping[str, Any]) -> bytes:
        check_result(result)
        return canonical_json(dict(result))
