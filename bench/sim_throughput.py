"""Simulator throughput: how fast it answers the calls a 1000-VM verify makes, against its own floor.

    python bench/sim_throughput.py [--quick] [--tasks 1000] [--entries 100000] [--seconds 3] [--clients 1 4]

The node is the one bench/verify_scale.py measures (the us node with a `--tasks` run and its audit
log topped up to `--entries` entries in the run's window). Measured over loopback, for up to
`--seconds` per row (at least 3 requests), with 1 and with 4 concurrent clients (the verifier
collects on 8 threads):

- floor: `GET /_sim/stats` (routing, a lock, JSON): what any answer costs at least;
- `entries:list` pages of 1000 over the raw REST path, for the verifier's own queries (first page
  and a later page) and for an unfiltered listing;
- `instances.aggregatedList` pages of 500 filtered by the job's uid, over the raw REST path;
- both again through the official clients (google-cloud-logging, google-cloud-compute), the way
  the verifier calls them.

Each row prints requests/s, latency, and its time relative to the floor. `--quick`: 100 tasks,
10 000 entries, 1 s per row.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BusyNode, busy_node, matching_entries, print_machine, verifier_queries  # noqa: E402

PROJECT = "fed-node-us"
MIN_REQUESTS = 3


@dataclass(frozen=True)
class Rate:
    label: str
    clients: int
    requests: int
    seconds: float
    items: int
    cpu_seconds: float   # this process (simulator and clients) meanwhile: robust to a busy machine

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.requests

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def latency_ms(self) -> float:
        return 1000 * self.seconds * self.clients / self.requests


def measure(label: str, call: Callable[[requests.Session], int], clients: int, budget: float) -> Rate:
    """Run `call` (one request, returning items received) back to back on `clients` threads."""
    counts = [0] * clients
    items = [0] * clients
    errors: list[BaseException] = []
    deadline = time.perf_counter() + budget

    def worker(slot: int) -> None:
        session = requests.Session()
        try:
            while counts[slot] < MIN_REQUESTS or time.perf_counter() < deadline:
                items[slot] += call(session)
                counts[slot] += 1
        except BaseException as exc:  # surfaced below, with the row's label
            errors.append(exc)
        finally:
            session.close()

    cpu = time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{label}: {errors[0]!r}")
    return Rate(label, clients, sum(counts), time.perf_counter() - started, sum(items), time.process_time() - cpu)


def logging_page(url: str, filter_text: str, *, page: int = 1) -> Callable[[requests.Session], int]:
    """One `entries:list` page of 1000; page > 1 fetches the tokens first (outside the timing)."""
    body: dict[str, Any] = {"resourceNames": [f"projects/{PROJECT}"], "filter": filter_text,
                            "orderBy": "timestamp asc", "pageSize": 1000}
    if page > 1:
        token = ""
        for _ in range(page - 1):
            answer = requests.post(f"{url}/v2/entries:list", json={**body, **({"pageToken": token} if token else {})},
                                   timeout=60).json()
            token = answer.get("nextPageToken", "")
            if not token:
                raise SystemExit(f"the query has fewer than {page} pages: {filter_text[:80]}...")
        body["pageToken"] = token

    def call(session: requests.Session) -> int:
        response = session.post(f"{url}/v2/entries:list", json=body, timeout=60)
        response.raise_for_status()
        return len(response.json().get("entries", []))

    return call


def aggregated_page(url: str, job_uid: str) -> Callable[[requests.Session], int]:
    params = {"filter": f'labels.batch-job-uid = "{job_uid}"', "maxResults": "500"}

    def call(session: requests.Session) -> int:
        response = session.get(f"{url}/compute/v1/projects/{PROJECT}/aggregated/instances", params=params,
                               timeout=60)
        response.raise_for_status()
        return sum(len(scope.get("instances", [])) for scope in response.json()["items"].values())

    return call


def floor(url: str) -> Callable[[requests.Session], int]:
    def call(session: requests.Session) -> int:
        session.get(f"{url}/_sim/stats", timeout=60).raise_for_status()
        return 0

    return call


def client_listing(url: str, filter_text: str) -> Callable[[requests.Session], int]:
    """A whole listing through google-cloud-logging, pages of 1000, as the verifier reads it."""
    from google.cloud import logging as cloud_logging

    from sovaudit import cloud

    client = cloud.logging(cloud.Target.parse(url), PROJECT)

    def call(_: requests.Session) -> int:
        entries = client.list_entries(resource_names=[f"projects/{PROJECT}"], filter_=filter_text,
                                      order_by=cloud_logging.ASCENDING, page_size=1000)
        return sum(1 for _ in entries)

    return call


def client_aggregated(url: str, job_uid: str) -> Callable[[requests.Session], int]:
    from sovaudit import cloud

    client = cloud.compute_instances(cloud.Target.parse(url))
    request = {"project": PROJECT, "filter": f'labels.batch-job-uid = "{job_uid}"', "max_results": 500}

    def call(_: requests.Session) -> int:
        return sum(len(scoped.instances) for _, scoped in client.aggregated_list(request=request, retry=None))

    return call


def rows(node: BusyNode) -> list[tuple[str, Callable[[requests.Session], int], int]]:
    """(label, one request, pages per call) for every row of the table."""
    seed = node.sim.state.extras["seed"]
    queries = verifier_queries(node)
    writes, inserts = queries["logging.data_writes"], queries["logging.instance_inserts"]
    matched = {purpose: matching_entries(node, text) for purpose, text in queries.items()}
    table: list[tuple[str, Callable[[requests.Session], int], int]] = [
        ("floor: GET /_sim/stats", floor(node.url), 1),
        (f"entries:list data-writes page 1 ({matched['logging.data_writes']} match)",
         logging_page(node.url, writes), 1),
    ]
    if matched["logging.data_writes"] > 1000:
        table.append(("entries:list data-writes page 2", logging_page(node.url, writes, page=2), 1))
    table += [
        (f"entries:list instance-inserts page 1 ({matched['logging.instance_inserts']} match)",
         logging_page(node.url, inserts), 1),
        ("entries:list unfiltered page 1", logging_page(node.url, ""), 1),
        (f"aggregatedList page of 500 ({node.job_tasks} VMs)", aggregated_page(node.url, seed.job_uid), 1),
    ]
    writes_pages = max(1, -(-matched["logging.data_writes"] // 1000))
    vm_pages = max(1, -(-node.job_tasks // 500))
    table += [
        (f"client: list_entries data-writes ({writes_pages} pages)", client_listing(node.url, writes),
         writes_pages),
        (f"client: aggregated_list ({vm_pages} pages)", client_aggregated(node.url, seed.job_uid), vm_pages),
    ]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 tasks, 10 000 entries, 1 s per row")
    parser.add_argument("--tasks", type=int, help="tasks (VMs) of the seeded run (default 1000)")
    parser.add_argument("--entries", type=int, help="audit entries in the run's window (default 100 000)")
    parser.add_argument("--seconds", type=float, help="time budget per row (default 3)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="concurrent clients per row")
    args = parser.parse_args()
    tasks = args.tasks or (100 if args.quick else 1000)
    entries = args.entries or (10_000 if args.quick else 100_000)
    budget = args.seconds or (1.0 if args.quick else 3.0)

    print_machine()
    node = busy_node(tasks, entries)
    try:
        print(f"# node: {tasks} VMs, {node.window_entries} entries in the window, "
              f"{len(node.sim.state.log_entries)} in the log")
        print(f"{'call':<58} {'clients':>7} {'req/s':>8} {'ms/req':>8} {'x floor':>8} {'cpu ms/req':>10} "
              f"{'items/s':>9}")
        floor_ms: dict[int, float] = {}
        for label, call, pages in rows(node):
            for clients in args.clients:
                rate = measure(label, call, clients, budget)
                per_request = rate.latency_ms / pages
                floor_ms.setdefault(clients, per_request)
                print(f"{label:<58} {clients:>7} {rate.per_second * pages:>8.1f} {per_request:>8.1f} "
                      f"{per_request / floor_ms[clients]:>7.0f}x {rate.cpu_ms / pages:>10.1f} "
                      f"{rate.items / rate.seconds:>9.0f}")
    finally:
        node.sim.stop()
    print("# req/s counts HTTP requests (client rows: pages); ms/req = per-request latency seen by one client;")
    print("# x floor = that latency over GET /_sim/stats with the same number of clients;")
    print("# cpu ms/req = this process's CPU (the simulator's threads and the clients') per request.")


if __name__ == "__main__":
    main()
