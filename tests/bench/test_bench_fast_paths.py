"""Correctness of the paths the benchmarks made fast, and of the busy node they measure on.

No timings here: a benchmark's figures belong in docs/benchmarks.md. These tests prove that the fast
paths answer exactly what the slow ones did, and that the benchmark's noise changes no verdict.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from sovaudit.audit.evidence import EvidenceItem, EvidenceLog
from sovaudit.audit.views import MANIFEST_FIELDS, EvidenceIncomplete, listed_manifests, manifest
from sovaudit.cli import main
from sovaudit.simulator import clock
from sovaudit.simulator.server import SimServer


def _bench_common() -> ModuleType:
    """bench/common.py under a name of its own (bench/ is scripts, not a package on sys.path)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "common.py"
    spec = importlib.util.spec_from_file_location("sovaudit_bench_common", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


busy_node = _bench_common().busy_node

JOB = "preprocess-genomes-001"


def _counts(index: int) -> dict[str, str]:
    return {"run_id": "r1", "job": JOB, "task_index": str(index), "input": f"gs://raw/sample-{index}.vcf.gz",
            "input_sha256": f"{index:064x}", "records_in": "10", "records_normalized": str(11 + index),
            "rows_loaded": str(11 + index), "load_job_id": f"load_{index}", "table": "p.hospital_data.variants"}


def _page(item_id: str, objects: list[dict[str, Any]], next_token: str | None = None) -> EvidenceItem:
    body: dict[str, Any] = {"kind": "storage#objects", "items": objects}
    if next_token:
        body["nextPageToken"] = next_token
    return EvidenceItem(id=item_id, purpose="storage.manifests", service="storage", method="objects.list",
                        request={"httpMethod": "GET", "url": "https://storage/b/out/o", "params": {}, "body": None},
                        status=200, body=json.dumps(body).encode(), collected_at="2026-11-26T17:00:00Z")


def _object(index: int, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": f"manifests/{JOB}/{index}.json", "metadata": _counts(index) if metadata is None else metadata}


def test_listing_index_reads_each_manifest_as_the_one_by_one_lookup_does() -> None:
    partial = {k: v for k, v in _counts(1).items() if k != "rows_loaded"}
    log = EvidenceLog((_page("0001", [_object(0), _object(1, partial)], "t2"), _page("0002", [_object(2)])))
    listed = listed_manifests(log)
    assert sorted(listed) == [f"manifests/{JOB}/0.json", f"manifests/{JOB}/2.json"]
    for index, page in ((0, "0001"), (2, "0002")):
        name = f"manifests/{JOB}/{index}.json"
        fast, slow = manifest(log, name, listed), manifest(log, name)
        assert fast == slow
        assert fast.evidence == (page,) and fast.rows_loaded == 11 + index
    # A listed object without every field is no manifest either way: the body was never downloaded.
    for lookup in (lambda n: manifest(log, n, listed), lambda n: manifest(log, n)):
        with pytest.raises(EvidenceIncomplete, match="storage.manifest:manifests/"):
            lookup(f"manifests/{JOB}/1.json")
    assert set(MANIFEST_FIELDS) <= set(_counts(0))


def test_a_downloaded_manifest_body_wins_over_the_listing_index() -> None:
    body = {**_counts(0), "rows_loaded": 5, "records_normalized": 5}
    download = EvidenceItem(id="0003", purpose=f"storage.manifest:manifests/{JOB}/0.json", service="storage",
                            method="objects.get", request={"httpMethod": "GET", "url": "u", "params": {}, "body": None},
                            status=200, body=json.dumps(body).encode(), collected_at="2026-11-26T17:00:00Z")
    log = EvidenceLog((_page("0001", [_object(0)]), download))
    read = manifest(log, f"manifests/{JOB}/0.json", listed_manifests(log))
    assert read.rows_loaded == 5 and read.evidence == ("0003",)


def _verify(url: str) -> dict[str, Any]:
    # The busy node's analysts are its listed readers (SEC-07), as in bench/verify_scale.py.
    result = CliRunner().invoke(main, ["verify", "--no-probes", "--policy", _bench_common().reader_policy(),
                                       "--target", url, "--job", JOB,
                                       "--format", "json", "--api-deadline", "5"], catch_exceptions=False)
    return json.loads(result.stdout[result.stdout.find("{"):])


def _outcomes(document: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["outcome"] for c in document["controls"]}


def test_int01_over_a_paged_listing_cites_the_page_holding_each_manifest(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(job_tasks=23)
    sim.state.options["max_page_size"] = 5    # manifests arrive in five listing pages
    document = _verify(sim.url)
    int01 = next(c for c in document["controls"] if c["id"] == "INT-01")
    assert int01["outcome"] == "PASS", int01["findings"][:3]
    assert len(int01["findings"]) == 23
    cited = {finding["evidence"][0] for finding in int01["findings"]}
    assert len(cited) == 5, "each manifest's finding cites its own listing page"


def test_busy_node_noise_changes_no_outcome() -> None:
    quiet = busy_node(job_tasks=10, window_entries=0)
    busy = busy_node(job_tasks=10, window_entries=4000)
    try:
        seed = busy.sim.state.extras["seed"]
        start, end = clock.parse(seed.window_start), clock.parse(seed.window_end)
        inside = [e for e in busy.sim.state.log_entries if start <= clock.parse(e["timestamp"]) <= end]
        assert busy.window_entries == len(inside) >= 4000
        assert quiet.noise_entries == 0 and busy.noise_entries > 3000
        assert len({e["insertId"] for e in busy.sim.state.log_entries}) == len(busy.sim.state.log_entries)
        quiet_result, busy_result = _verify(quiet.url), _verify(busy.url)
        # --no-probes: the probe controls are SKIPPED, so a clean busy node is WARNED (never FAIL/INCOMPLETE).
        assert busy_result["verdict"] == "WARNED"
        assert _outcomes(busy_result) == _outcomes(quiet_result)
    finally:
        quiet.sim.stop()
        busy.sim.stop()


def test_insert_query_leaves_only_the_bodiless_last_entries_on_the_server(
        sim_factory: Callable[..., SimServer]) -> None:
    from google.cloud import logging as cloud_logging

    from sovaudit import cloud
    from sovaudit.audit.collectors import logs
    from sovaudit.simulator import audit_log

    sim = sim_factory(job_tasks=7)
    state = sim.state
    seed = state.extras["seed"]
    start, end = clock.parse(seed.window_start), clock.parse(seed.window_end)
    # An insert logged without an operation (as a synchronous call would be) must still be listed.
    audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.ACTIVITY, service="compute.googleapis.com", method="v1.compute.instances.insert",
        resource_name=f"projects/{state.project_id}/zones/{state.zones[0]}/instances/odd-one",
        resource_type="gce_instance", resource_labels={"project_id": state.project_id, "zone": state.zones[0]},
        principal="someone@example.org", timestamp=start, request={"name": "odd-one"}))
    client = cloud.logging(cloud.Target.parse(sim.url), state.project_id)
    query = logs.filters(state.project_id, start, end)["logging.instance_inserts"]
    listed = [entry.to_api_repr() for entry in client.list_entries(
        resource_names=[f"projects/{state.project_id}"], filter_=query, order_by=cloud_logging.ASCENDING)]
    assert not any((e.get("operation") or {}).get("last") for e in listed)
    # The same query brings each VM's launch attestation report (CC-04), and nothing else of that log.
    launches = [e for e in listed if "jsonPayload" in e]
    listed = [e for e in listed if "jsonPayload" not in e]
    assert len(launches) == len(seed.instances)
    assert all("sevLaunchAttestationReportEvent" in e["jsonPayload"] for e in launches)
    names = {e["protoPayload"]["request"].get("name") for e in listed}
    assert names == {link.rsplit("/", 1)[-1] for link in seed.instances} | {"odd-one"}
    assert all(set(e["protoPayload"]["request"]) - {"@type"} for e in listed), "every listed insert has a body"
