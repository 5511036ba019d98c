"""Fixtures for the report tests: fresh result dicts, evidence and key pairs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from report_samples import make_evidence, make_result

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.reports.keys import generate_key


@pytest.fixture
def result() -> dict[str, Any]:
    return copy.deepcopy(make_result())


@pytest.fixture
def evidence() -> EvidenceLog:
    return make_evidence()


@pytest.fixture(params=["ed25519", "ecdsa-p256"])
def keypair(request: pytest.FixtureRequest, tmp_path: Path):
    return generate_key(tmp_path / "keys", request.param)
