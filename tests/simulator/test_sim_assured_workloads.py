"""The simulator's Assured Workloads v1 through the product's own clients: the workload as the GAPIC
client reads it, violations with Google's interval semantics ("active between"), paging, `workloads/-`,
one violation, and the errors Google gives for another organization and an unknown workload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions

from sovaudit import cloud
from sovaudit.cloud import Target
from sovaudit.simulator.server import SimServer

ORG = "organizations/161803398874"
US = f"{ORG}/locations/us-central1/workloads/genomics-sovereign"


def _list(sim: SimServer, parent: str, **params: Any) -> tuple[int, dict[str, Any]]:
    session, base = cloud.assured_workloads_session(Target.parse(sim.url))
    response = session.get(f"{base}/v1/{parent}/violations", params=params, timeout=10)
    return response.status_code, response.json()


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_workload_reads_through_the_rest_client_with_numeric_enums(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(node="eu")
    client = cloud.assured_workloads(Target.parse(sim.url))
    workload = client.get_workload(name=f"{ORG}/locations/europe-west4/workloads/genomics-sovereign")
    assert workload.compliance_regime.name == "EU_REGIONS_AND_SUPPORT"
    # (google-cloud-assured-workloads 2.5 has no resource_monitoring_enabled field: SOV-09 reads the raw JSON)
    assert workload.enable_sovereign_controls
    assert [(r.resource_id, r.resource_type.name) for r in workload.resources] == [(271828182845, "CONSUMER_PROJECT")]


def test_another_organization_is_403_and_an_unknown_workload_404(sim_factory: Callable[..., SimServer]) -> None:
    client = cloud.assured_workloads(Target.parse(sim_factory().url))
    with pytest.raises(exceptions.Forbidden):
        client.get_workload(name="organizations/1/locations/us-central1/workloads/genomics-sovereign")
    with pytest.raises(exceptions.NotFound):
        client.get_workload(name=f"{ORG}/locations/us-central1/workloads/nope")


def test_violations_are_listed_when_active_inside_the_interval(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["aw-violation-resolved-in-window"])
    status, body = _list(sim, US)
    assert status == 200 and len(body["violations"]) == 1
    found = body["violations"][0]
    assert found["state"] == "RESOLVED" and found["name"] == f"{US}/violations/2003"
    begin = datetime.fromisoformat(found["beginTime"].replace("Z", "+00:00"))
    resolved = datetime.fromisoformat(found["resolveTime"].replace("Z", "+00:00"))
    minute = timedelta(minutes=1)
    for start, end, expected in [(begin - 10 * minute, begin - minute, 0),      # ended before it began
                                 (resolved + minute, resolved + 10 * minute, 0),  # began after it was resolved
                                 (begin - 10 * minute, begin + minute, 1),
                                 (begin + minute, resolved - minute, 1),          # inside its life
                                 (resolved - minute, resolved + 10 * minute, 1)]:
        status, body = _list(sim, US, **{"interval.startTime": _z(start), "interval.endTime": _z(end)})
        assert status == 200 and len(body.get("violations", [])) == expected, (start, end)


def test_bad_interval_is_400_invalid_argument(sim_factory: Callable[..., SimServer]) -> None:
    status, body = _list(sim_factory(), US, **{"interval.startTime": "yesterday"})
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"


def test_violations_page_and_the_wildcard_workload_lists_them_all(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["aw-violation-on-last-page"])
    seen, token, pages = [], "", 0
    while True:
        status, body = _list(sim, US, pageSize=1000, **({"pageToken": token} if token else {}))
        assert status == 200
        pages += 1
        seen += [v["name"].rsplit("/", 1)[-1] for v in body.get("violations", [])]
        token = body.get("nextPageToken", "")
        if not token:
            break
    assert pages == 3 and seen == ["3002", "3001", "3003"]   # Google's default order: beginTime descending
    status, body = _list(sim, f"{ORG}/locations/us-central1/workloads/-")
    assert status == 200 and body.get("nextPageToken")


def test_one_violation_by_name(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["aw-violation-exception"])
    session, base = cloud.assured_workloads_session(Target.parse(sim.url))
    found = session.get(f"{base}/v1/{US}/violations/2004", timeout=10).json()
    assert found["state"] == "EXCEPTION" and found["exceptionContexts"][0]["userName"] == "mallory@example.org"
    assert session.get(f"{base}/v1/{US}/violations/nope", timeout=10).status_code == 404


def test_compliance_status_counts_the_unresolved_violations(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["aw-violation-acknowledged"])
    session, base = cloud.assured_workloads_session(Target.parse(sim.url))
    workload = session.get(f"{base}/v1/{US}", timeout=10).json()
    assert workload["complianceStatus"] == {"acknowledgedViolationCount": 1}


def test_the_html_report_lists_the_violation_in_the_sovereignty_section() -> None:
    from sovaudit.reports.html import HtmlFormat
    from sovaudit.simulator.matrix import run_row
    from sovaudit.simulator.node import load_scenario

    row = run_row(load_scenario("aw-violation-exception"))
    page = HtmlFormat().render(row.document).decode()
    sovereignty = page.split("<h2>Data sovereignty</h2>", 1)[1].split("<h2>", 1)[0]
    assert 'id="SOV-09"' in sovereignty
    assert f"{US}/violations/2004" in sovereignty and "mallory@example.org" in sovereignty
