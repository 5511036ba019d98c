"""The simulator starts from a node file, seeds the finished job quickly, and reports its stats."""

from __future__ import annotations

import requests

from sovaudit.simulator import start


def test_start_seeds_the_finished_job_with_one_vm_per_task(sim_shared) -> None:
    state = sim_shared.state
    job = state.jobs["projects/314159265358/locations/us-central1/jobs/preprocess-genomes-001"]
    assert job["status"]["state"] == "SUCCEEDED"
    assert job["taskGroups"][0]["taskCount"] == "10"
    vms = [vm for vm in state.instances.values() if vm["labels"].get("batch-job-uid") == job["uid"]]
    assert len(vms) == 10
    assert {vm["zone"].rsplit("/", 1)[-1] for vm in vms} <= set(state.zones)


def test_thousand_tasks_seed_one_vm_and_one_load_job_per_task() -> None:
    # How fast that is belongs to bench/verify_scale.py, not to a timed assertion here.
    server = start(node="us", job_tasks=1000)
    try:
        job_uid = server.state.extras["seed"].job_uid
        assert sum(vm.get("labels", {}).get("batch-job-uid") == job_uid for vm in server.state.instances.values()) == 1000
        assert len(server.state.bq_jobs) == 1000
    finally:
        server.stop()


def test_stats_count_requests_by_api(sim) -> None:
    requests.get(f"{sim.url}/v3/projects/fed-node-us", timeout=5)
    stats = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()
    assert stats["by_api"]["resourcemanager"] == 1
    assert stats["requests"] == 1


def test_sim_server_takes_a_node_as_the_architecture_page_shows() -> None:
    from sovaudit.simulator.server import SimServer

    with SimServer(node="eu", scenarios=["vm-public-ip"], job_tasks=2) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        assert sim.state.project_id == "fed-node-eu"
        assert sim.state.scenarios == ["vm-public-ip"]


def test_batch_answers_numeric_enums_to_the_generated_client_and_names_otherwise(sim_shared) -> None:
    url = f"{sim_shared.url}/v1/projects/fed-node-us/locations/us-central1/jobs/preprocess-genomes-001"
    numeric = requests.get(url, params={"$alt": "json;enum-encoding=int"}, timeout=5).json()
    named = requests.get(url, timeout=5).json()
    assert (numeric["status"]["state"], numeric["logsPolicy"]["destination"]) == (4, 1)
    assert (named["status"]["state"], named["logsPolicy"]["destination"]) == ("SUCCEEDED", "CLOUD_LOGGING")
    assert numeric["status"]["statusEvents"][0]["type"] == "STATUS_CHANGED"   # a string field, not an enum
