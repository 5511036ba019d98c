"""Fault injection: each injected fault reaches the official clients as Google's own failure would.

Faults are set on the live state (`sim.state.options["faults"]`), exactly what a scenario's
`options.faults` becomes, and observed through the official google-cloud clients over loopback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from sim_clients import logging, orgpolicy, session

from sovaudit.simulator.node import NodeFileError, load_scenario
from sovaudit.simulator.server import SimServer

PROJECT = "fed-node-us"
RAW = "fed-node-us-raw-vcfs"
POLICY = f"projects/{PROJECT}/policies/gcp.resourceLocations"


def storage(url: str) -> Any:
    from google.cloud import storage as storage_module

    return storage_module.Client(project=PROJECT, credentials=AnonymousCredentials(),
                                 client_options={"api_endpoint": url})


def templates(url: str) -> Any:
    from google.cloud import compute_v1

    return compute_v1.InstanceTemplatesClient(transport="rest", credentials=AnonymousCredentials(),
                                              client_options={"api_endpoint": url})


def inject(sim: SimServer, *faults: dict[str, Any]) -> None:
    sim.state.options["faults"] = [dict(fault) for fault in faults]


def test_rate_limit_answers_429_with_retry_after_in_the_classic_shape(sim: SimServer) -> None:
    inject(sim, {"api": "compute", "status": 429, "retry_after": 7})
    with pytest.raises(exceptions.TooManyRequests) as caught:
        templates(sim.url).get(project=PROJECT, instance_template="sev-n2d-batch", retry=None)
    assert caught.value.response.headers["Retry-After"] == "7"
    body = caught.value.response.json()["error"]
    assert body["code"] == 429 and body["errors"][0]["reason"] == "rateLimitExceeded"


def test_burst_fails_times_then_the_same_call_succeeds(sim: SimServer) -> None:
    inject(sim, {"api": "storage", "status": 500, "times": 1}, {"api": "storage", "status": 503, "times": 2})
    client = storage(sim.url)
    seen = []
    for _ in range(3):
        with pytest.raises(exceptions.GoogleAPICallError) as caught:
            client.get_bucket(RAW, retry=None)
        seen.append(caught.value.code)
    assert seen == [500, 503, 503]
    assert client.get_bucket(RAW, retry=None).name == RAW
    hits = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()["faults_injected"]
    assert sorted(h["hits"] for h in hits) == [1, 2]


def test_permission_denied_is_403_with_error_info_naming_the_permission(sim: SimServer) -> None:
    inject(sim, {"api": "orgpolicy", "status": 403, "permission": "orgpolicy.policy.get"})
    with pytest.raises(exceptions.Forbidden) as caught:
        orgpolicy(sim.url).get_effective_policy(name=POLICY, retry=None)
    error = caught.value.response.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert "orgpolicy.policy.get" in error["message"]
    (info,) = error["details"]
    assert info["reason"] == "IAM_PERMISSION_DENIED" and info["metadata"]["permission"] == "orgpolicy.policy.get"


def test_permission_denied_on_a_classic_api_uses_reason_forbidden(sim: SimServer) -> None:
    inject(sim, {"api": "storage", "status": 403})
    with pytest.raises(exceptions.Forbidden) as caught:
        storage(sim.url).get_bucket(RAW, retry=None)
    assert caught.value.response.json()["error"]["errors"][0]["reason"] == "forbidden"


def test_dropped_connection_gives_no_http_answer_then_recovers(sim: SimServer) -> None:
    inject(sim, {"api": "storage", "drop_connection": True, "times": 1})
    client = storage(sim.url)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get_bucket(RAW, retry=None)
    assert client.get_bucket(RAW, retry=None).name == RAW


def test_expired_page_token_fails_the_second_page_only(sim: SimServer) -> None:
    sim.state.options["max_page_size"] = 2
    inject(sim, {"api": "logging", "expire_page_token": True, "times": 1})
    client = logging(sim.url)
    filter_text = (f'logName="projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity" '
                   'AND timestamp>="2000-01-01T00:00:00Z"')
    entries = client.list_entries(resource_names=[f"projects/{PROJECT}"], filter_=filter_text, page_size=2)
    first_page = [next(entries), next(entries)]
    assert len(first_page) == 2
    with pytest.raises(exceptions.BadRequest) as caught:
        next(entries)
    assert "page token" in caught.value.message and caught.value.response.json()["error"]["status"] == "INVALID_ARGUMENT"
    # Restarting the listing from page 1 goes through (the fault fired its one time).
    again = list(client.list_entries(resource_names=[f"projects/{PROJECT}"], filter_=filter_text, page_size=2))
    assert len(again) > 2


def test_expired_page_token_on_compute_is_an_invalid_pagetoken_field(sim: SimServer) -> None:
    inject(sim, {"api": "compute", "path": "/aggregated/instances$", "expire_page_token": True})
    url = f"{sim.url}/compute/v1/projects/{PROJECT}/aggregated/instances"
    response = session().get(url, params={"maxResults": "3"}, timeout=5)
    assert response.status_code == 200   # the first page carries no token, so the fault does not fire
    token = response.json()["nextPageToken"]
    second = session().get(url, params={"maxResults": "3", "pageToken": token}, timeout=5)
    assert second.status_code == 400
    error = second.json()["error"]
    assert error["errors"][0]["reason"] == "invalid" and error["errors"][0]["location"] == "pageToken"


def test_path_and_method_select_which_calls_fail(sim: SimServer) -> None:
    inject(sim, {"api": "storage", "method": "GET", "path": r"^/storage/v1/b/[^/]+$", "status": 503})
    client = storage(sim.url)
    with pytest.raises(exceptions.ServiceUnavailable):
        client.get_bucket(RAW, retry=None)
    # Listing buckets (another path) and other APIs are untouched.
    assert RAW in {b.name for b in client.list_buckets(retry=None)}
    assert orgpolicy(sim.url).get_effective_policy(name=POLICY, retry=None).name


def test_latency_delays_only_the_matching_calls(sim: SimServer) -> None:
    inject(sim, {"api": "orgpolicy", "latency_ms": 1500})
    client = orgpolicy(sim.url)
    began = time.monotonic()
    assert client.get_effective_policy(name=POLICY, retry=None).name   # slow, but answered
    slow = time.monotonic() - began
    began = time.monotonic()
    storage(sim.url).get_bucket(RAW, retry=None)
    fast = time.monotonic() - began
    assert slow >= 1.5 and fast < 1.5


def _scenario(tmp_path: Path, fault: str) -> Path:
    path = tmp_path / "fault-bad.yaml"
    path.write_text(f"name: fault-bad\ndescription: x\nfails: []\noptions:\n  faults:\n    - {fault}\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("fault", "says"), [
    ("{api: compute}", "needs status, drop_connection"),
    ("{api: compute, status: 503, drop_connection: true}", "do not combine"),
    ("{api: compute, retry_after: 2, latency_ms: 5}", "give a status"),
    ("{api: compute, path: '[', status: 503}", "not a regular expression"),
    ("{api: compute, status: 503, times: 0}", "below the minimum"),
    ("{api: orgpolicy, status: 500, permission: x.y.z}", "status: 403"),
    ("{api: compte, status: 503}", "is not one of"),
])
def test_a_fault_that_cannot_work_is_refused_naming_the_field(tmp_path: Path, fault: str, says: str) -> None:
    with pytest.raises(NodeFileError) as caught:
        load_scenario(_scenario(tmp_path, fault))
    assert "options.faults[0]" in str(caught.value) and says in str(caught.value)


def test_every_fault_scenario_declares_what_it_makes_incomplete() -> None:
    from sovaudit.simulator.node import scenario_names

    faults = [load_scenario(name) for name in scenario_names() if name.startswith("fault-")]
    assert len(faults) >= 6
    for scenario in faults:
        assert scenario.options.get("faults"), scenario.name
        assert not scenario.fails, f"{scenario.name}: an API fault can make evidence missing, never a FAIL"


def test_fault_api_names_are_exactly_the_routed_apis() -> None:
    from sovaudit.simulator.faults import KNOWN_APIS
    from sovaudit.simulator.server import build_router

    routed = {route.api for route in build_router()._routes}
    assert set(KNOWN_APIS) - {"*"} == routed
