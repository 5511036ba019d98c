"""verify end to end over a project with folders and an organization: settings made above the
project count, through the official clients against the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from test_verify_e2e import outcomes, run_verify

from sovaudit.simulator.server import SimServer


def scenario(tmp_path: Path, name: str, node: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": "test", "fails": [], "node": node}))
    return str(path)


def test_data_access_enabled_only_at_the_organization_passes(tmp_path: Path) -> None:
    """hierarchy-org-enables-data-access: the project's own policy has no auditConfigs (it reads "off"),
    the organization enables storage DATA_WRITE and DATA_READ for allServices: logging is on."""
    org_enables = scenario(tmp_path, "hierarchy-org-enables-data-access", {
        "project": {"parent": "folders/876543210987"},
        "iam_policy": {"auditConfigs": None},
        "hierarchy": {
            "folders": [{"id": "876543210987", "parent": "organizations/161803398874", "display_name": "genomics"}],
            "organization": {"iam_policy": {"auditConfigs": [
                {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_WRITE"}, {"logType": "DATA_READ"}]}]}}}})
    with SimServer(node="us", scenarios=[org_enables]) as sim:
        code, document = run_verify(sim, "--no-probes")
    assert not outcomes(document, "FAIL") and not outcomes(document, "ERROR"), document["summary"]
    sec05 = next(c for c in document["controls"] if c["id"] == "SEC-05")
    assert "set at organizations/161803398874" in sec05["findings"][0]["message"]
    assert code == 0


def test_data_access_off_everywhere_in_the_chain_still_fails(tmp_path: Path) -> None:
    off = scenario(tmp_path, "hierarchy-off-everywhere", {
        "project": {"parent": "folders/876543210987"}, "iam_policy": {"auditConfigs": None},
        "hierarchy": {"folders": [{"id": "876543210987", "parent": "organizations/161803398874"}]}})
    with SimServer(node="us", scenarios=[off]) as sim:
        code, document = run_verify(sim, "--no-probes")
    assert "SEC-05" in outcomes(document, "FAIL") and code == 1
