"""Verifier at scale: `sovaudit verify --no-probes` on a 10-, 100- and 1000-VM run of a busy node.

    python bench/verify_scale.py [--quick] [--tasks 10 100 1000] [--entries 100000] [--repeat 2] [--profile]

Each size starts the simulator in-process with that many tasks, tops its audit log up to
`--entries` entries inside the run's window (other people's activity; see bench/common.py), then:

- runs `sovaudit verify --no-probes --policy us --target URL --job preprocess-genomes-001 --format json`
  as a fresh process (start-up included), reading `/_sim/stats` before and after for the request
  count, and checks the verdict is WARNED — every control passed but the two probe controls that
  --no-probes leaves SKIPPED (a fast run that judged nothing would be no result);
- runs the naive baseline, also as a fresh process: one `compute_v1.InstancesClient.get` per VM
  through the official client, which is what a collector without server-side filters does.

Goal (issue 7): at 1000 VMs and >= 100 000 entries, <= 10 s wall and <= 60 API requests.
`--profile` adds a cProfile of one in-process verify at the largest size, client and simulator
threads apart, and prints the top costs of each. `--quick`: 10 and 100 tasks, 10 000 entries.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    busy_node,
    matching_entries,
    print_machine,
    reader_policy,
    request_delta,
    sim_requests,
    sovaudit_command,
    verifier_queries,
)

JOB = "preprocess-genomes-001"
GOAL_SECONDS = 10.0
GOAL_REQUESTS = 60
# The us pack with the busy node's analysts as readers (SEC-07); see common.reader_policy.
BENCH_POLICY = reader_policy()
RUN_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Measured:
    seconds: float
    requests: dict[str, int]
    collect_seconds: float | None = None
    verdict: str = ""
    cpu_seconds: float = 0.0    # user + system time of the measured process (less sensitive to load than wall)
    sim_cpu_seconds: float = 0.0  # the same for this process meanwhile: the simulator's threads

    @property
    def total(self) -> int:
        return self.requests.get("requests", 0)


def verify_command(url: str, *extra: str) -> list[str]:
    return [*sovaudit_command(), "verify", "--no-probes", "--policy", BENCH_POLICY, "--target", url, "--job", JOB,
            "--format", "json", *extra]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_verify(url: str, *extra: str) -> Measured:
    before = sim_requests(url)
    cpu, sim_cpu = _children_cpu(), _own_cpu()
    started = time.perf_counter()
    done = subprocess.run(verify_command(url, *extra), capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS,
                          check=False)
    seconds = time.perf_counter() - started
    cpu, sim_cpu = _children_cpu() - cpu, _own_cpu() - sim_cpu
    after = sim_requests(url)
    try:
        verdict = json.loads(done.stdout)["verdict"]
    except (ValueError, KeyError) as error:
        raise SystemExit(f"verify exited {done.returncode} without a JSON result; stderr:\n{done.stderr[-3000:]}") from error
    collected = re.search(r"collected \d+ API exchanges in ([\d.]+)s", done.stderr)
    return Measured(seconds, request_delta(before, after), float(collected.group(1)) if collected else None, verdict,
                    cpu, sim_cpu)


def expected_pages(node: Any) -> str:
    """The pages verify's listings must take on this node: what its request count should follow."""
    parts = []
    for purpose, text in verifier_queries(node).items():
        matched = matching_entries(node, text)
        parts.append(f"{purpose.split('.', 1)[1]} {max(1, -(-matched // 1000))} ({matched} entries)")
    parts.append(f"job VMs {max(1, -(-node.job_tasks // 500))} ({node.job_tasks} VMs)")
    return ", ".join(parts)


def run_bundled(url: str) -> Measured:
    """One verify as a release gate runs it: the signed evidence bundle written, reports rendered."""
    with tempfile.TemporaryDirectory(prefix="sovaudit-bench-") as scratch:
        subprocess.run([*sovaudit_command(), "keys", "generate", "--out", scratch], check=True, capture_output=True,
                       timeout=RUN_TIMEOUT_SECONDS)
        key = next(p for p in Path(scratch).glob("*.pem") if not p.name.endswith(".pub.pem"))
        return run_verify(url, "--out", str(Path(scratch) / "runs"), "--sign-key", str(key))


def run_naive(url: str, vm_links: list[str]) -> Measured:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as listing:
        json.dump(vm_links, listing)
    before = sim_requests(url)
    cpu, sim_cpu = _children_cpu(), _own_cpu()
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--naive-collector", url, listing.name], check=True,
                   timeout=RUN_TIMEOUT_SECONDS, capture_output=True)
    seconds = time.perf_counter() - started
    cpu, sim_cpu = _children_cpu() - cpu, _own_cpu() - sim_cpu
    Path(listing.name).unlink()
    return Measured(seconds, request_delta(before, sim_requests(url)), cpu_seconds=cpu, sim_cpu_seconds=sim_cpu)


def naive_collector(url: str, listing: Path) -> None:
    """The baseline: the job's VMs one `instances.get` at a time, official client, REST, sequential."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1

    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(), transport="rest",
                                        client_options=ClientOptions(api_endpoint=url))
    confidential = 0
    for link in json.loads(listing.read_text()):
        parts = link.split("/")
        vm = client.get(project=parts[parts.index("projects") + 1], zone=parts[parts.index("zones") + 1],
                        instance=parts[-1], retry=None, timeout=30)
        confidential += bool(vm.confidential_instance_config.enable_confidential_compute)
    print(json.dumps({"confidential": confidential}))


@dataclass(frozen=True)
class Served:
    started: float      # perf_counter seconds, this process's clock
    seconds: float      # time inside the simulator's dispatch (routing, handler, JSON encoding)
    method: str
    path: str
    bytes: int


# Runs `sovaudit verify` in a fresh interpreter that notes, on its own clock, when collection ends,
# when judging starts and ends, every generation-2 garbage collection, and when atexit runs (after
# the output is written; what follows is the interpreter tearing down). Prints them as JSON on stderr.
_PHASE_WRAPPER = r"""
import atexit, gc, json, sys, time
T0 = time.perf_counter()
marks = {}
gc2 = []
def _gc(phase, info):
    if info["generation"] == 2:
        gc2.append(time.perf_counter()) if phase == "start" else gc2.append(-time.perf_counter())
gc.callbacks.append(_gc)
from sovaudit.audit import engine
_collect, _judge = engine.collect, engine.judge
def collect(*args, **kwargs):
    result = _collect(*args, **kwargs)
    marks["collected"] = time.perf_counter() - T0
    return result
def judge(*args, **kwargs):
    marks["judge_start"] = time.perf_counter() - T0
    result = _judge(*args, **kwargs)
    marks["judged"] = time.perf_counter() - T0
    return result
engine.collect, engine.judge = collect, judge
def _report():
    marks["atexit"] = time.perf_counter() - T0
    pauses = [-stop - start for start, stop in zip(gc2[::2], gc2[1::2])]
    marks["gc2_count"], marks["gc2_seconds"] = len(pauses), sum(pauses)
    sys.stderr.write("\nPHASES " + json.dumps(marks) + "\n")
atexit.register(_report)
from sovaudit.cli import main
main(sys.argv[1:])
"""


def trace_verify(sim: Any) -> None:
    """One verify (fresh process) with every request timed inside the simulator, and the run's phases.

    Wraps the app's `dispatch` from here, for this run only; the simulator's code is unchanged. The
    verify process runs through `_PHASE_WRAPPER`, which changes nothing it does and only takes notes.
    """
    served: list[Served] = []
    dispatch = sim.app.dispatch

    def timed(request: Any) -> Any:
        begun = time.perf_counter()
        response = dispatch(request)
        served.append(Served(begun, time.perf_counter() - begun, request.method, request.path,
                             int(response.calculate_content_length() or 0)))
        return response

    sim.app.dispatch = timed
    command = [sys.executable, "-c", _PHASE_WRAPPER, *verify_command(sim.url)[len(sovaudit_command()):]]
    try:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False)
        ended = time.perf_counter()
    finally:
        del sim.app.dispatch
    calls = [s for s in served if s.path != "/_sim/stats"]
    phases = re.search(r"^PHASES (\{.*\})$", done.stderr, re.MULTILINE)
    if not calls or done.returncode != 0 or not phases:
        print(f"trace: verify exited {done.returncode}; {done.stderr[-2000:]}")
        return
    marks = json.loads(phases.group(1))
    first = min(c.started for c in calls)
    last = max(c.started + c.seconds for c in calls)
    print(f"\n## one verify, phases (fresh process, {ended - started:.2f} s wall)")
    print(f"  start-up until the first request   {first - started:5.2f} s")
    print(f"  first request to last answer       {last - first:5.2f} s")
    print(f"  collection ends (verify's clock)   {marks['collected']:5.2f} s after start")
    print(f"  judging                            {marks['judged'] - marks['judge_start']:5.2f} s")
    print(f"  result JSON and output             {marks['atexit'] - marks['judged']:5.2f} s")
    print(f"  interpreter teardown after output  {ended - started - marks['atexit']:5.2f} s (freeing objects; "
          "includes process start)")
    print(f"  generation-2 garbage collections   {marks['gc2_seconds']:5.2f} s in {marks['gc2_count']} pauses "
          "(within the phases above)")
    by_path: dict[str, list[Served]] = {}
    for call in calls:
        by_path.setdefault(f"{call.method} {call.path}", []).append(call)
    print(f"simulator time per route (sum {sum(c.seconds for c in calls):.2f} s over {len(calls)} requests):")
    for route, items in sorted(by_path.items(), key=lambda kv: -sum(c.seconds for c in kv[1])):
        print(f"  {sum(c.seconds for c in items):6.3f} s  {len(items):3d} req  "
              f"{sum(c.bytes for c in items) / 1e6:6.2f} MB  {route}")


# Where own time goes, by area: the first pattern (searched in "file:function") that matches wins.
AREAS: tuple[tuple[str, str], ...] = (
    ("waiting (locks, queues, sockets)", r"method 'acquire'|SimpleQueue|recv_into|poll' of|select' of|sendall|"
                                         r"method 'accept'|connect' of|threading\.py"),
    ("imports (finding, reading, executing modules)", r"importlib|marshal\.loads|posix\.stat|open_code|"
                                                      r"posix\.listdir|_imp\.|builtins\.__build_class__|exec>"),
    ("protobuf / proto-plus (client response parsing)", r"google/protobuf|/proto/"),
    ("google client libraries", r"site-packages/google"),
    ("HTTP (requests, urllib3, http.client, werkzeug)", r"requests/|urllib3|http/client|werkzeug|socketserver|"
                                                        r"email/|http/server"),
    ("JSON encode/decode", r"json/"),
    ("deepcopy", r"copy\.py"),
    ("simulator: log query evaluation", r"simulator/logquery"),
    ("simulator: other", r"simulator/"),
    ("audit: views and controls", r"audit/(views|controls|evaluate|models|locations|evidence)"),
    ("audit: collectors, recorder, engine", r"audit/"),
    ("reports", r"reports/"),
)


def areas(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time summed by area, largest first; "other" names its three largest functions."""
    totals: dict[str, float] = {}
    others: list[tuple[float, str]] = []
    compiled = [(name, re.compile(pattern)) for name, pattern in AREAS]
    for (filename, line, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        area = next((name for name, pattern in compiled if pattern.search(where)), "other")
        totals[area] = totals.get(area, 0.0) + own
        if area == "other":
            others.append((own, f"{Path(filename).name}:{line}({function})"))
    if "other" in totals:
        named = ", ".join(f"{where} {own:.2f}" for own, where in sorted(others, reverse=True)[:3])
        totals[f"other ({named})"] = totals.pop("other")
    return sorted(totals.items(), key=lambda pair: -pair[1])


def profile_verify(url: str, top: int) -> None:
    """cProfile one verify in-process: collection with a profiler per thread (the client's threads
    apart from the simulator's), then judging alone on the main thread."""
    from sovaudit.audit import engine
    from sovaudit.cloud import Target
    from sovaudit.policies.pack import resolve_policy

    options = engine.VerifyOptions(target=Target.parse(url), pack=resolve_policy(BENCH_POLICY), job=JOB, posture_only=False,
                                   probes=False, since=None, until=None, api_deadline_seconds=60.0)
    # A list, not a dict by thread id: the simulator starts a thread per connection and ids are reused.
    profiles: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()

    def start_thread_profile(*_: Any) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append((threading.current_thread().name, profile))
        profile.enable()   # replaces this hook for the rest of the thread's life

    threading.setprofile(start_thread_profile)
    main_profile = cProfile.Profile()
    started = time.perf_counter()
    main_profile.enable()
    try:
        collected = engine.collect(options, progress=lambda message: None)
    finally:
        main_profile.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    collect_seconds = time.perf_counter() - started
    judge_profile = cProfile.Profile()
    started = time.perf_counter()
    judge_profile.enable()
    result = engine.judge(collected.evidence, options.pack, collected.scope, run_id=options.run_id, target=url,
                          principal="anonymous", started_at=collected.started_at, finished_at=collected.finished_at)
    document = json.dumps(result.to_json(), indent=2)
    judge_profile.disable()
    judge_seconds = time.perf_counter() - started
    client = pstats.Stats(main_profile)
    server: pstats.Stats | None = None
    for name, profile in profiles:
        profile.create_stats()
        if "process_request_thread" in name:
            server = pstats.Stats(profile) if server is None else server.add(profile) or server
        else:
            client.add(profile)
    print(f"\n## profile: one in-process verify (verdict {result.verdict}, "
          f"{len(document) / 1e6:.1f} MB of result JSON); cProfile inflates every figure")
    print(f"collection {collect_seconds:.2f} s wall; judging and result JSON {judge_seconds:.2f} s wall")
    for title, stats in (("collection, client threads", client), ("collection, simulator threads", server)):
        if stats is None:
            continue
        print(f"\n### {title}: own time by area (summed over threads)")
        for area, seconds in areas(stats):
            if seconds >= 0.005:
                print(f"  {seconds:7.2f} s  {area}")
    _print_top("collection, simulator threads: top own time", server, "tottime", top)
    _print_top("judging: top cumulative time", pstats.Stats(judge_profile), "cumulative", top)


def _print_top(title: str, stats: pstats.Stats | None, key: str, top: int) -> None:
    if stats is None:
        return
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats(key).print_stats(top)
    print(f"\n### {title}")
    print("\n".join(_trim(buffer.getvalue())))


def _trim(report: str) -> list[str]:
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    return [re.sub(r"/work/venv/lib/python3\.\d+/site-packages/|/work/main/|/root/\.pyenv/versions/[^/]+/lib/", "",
                   line)
            for line in lines[start:] if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 and 100 tasks, 10 000 entries, one repeat")
    parser.add_argument("--tasks", type=int, nargs="+", help="job sizes (default 10 100 1000)")
    parser.add_argument("--entries", type=int, help="audit entries in the window (default 100 000)")
    parser.add_argument("--repeat", type=int, help="verify runs per size; the median is reported (default 3)")
    parser.add_argument("--profile", action="store_true", help="also profile one verify at the largest size")
    parser.add_argument("--top", type=int, default=25, help="rows per profile table")
    parser.add_argument("--naive-collector", nargs=2, metavar=("URL", "VM_LIST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_collector:
        naive_collector(args.naive_collector[0], Path(args.naive_collector[1]))
        return
    sizes = args.tasks or ([10, 100] if args.quick else [10, 100, 1000])
    entries = args.entries or (10_000 if args.quick else 100_000)
    repeat = args.repeat or (1 if args.quick else 3)

    print_machine()
    print(f"# verify --no-probes vs one instances.get per VM; {entries} audit entries in each run's window")
    print(f"{'VMs':>5} {'entries':>8} | {'verify s':>8} {'cpu s':>5} {'sim s':>5} {'collect s':>9} {'requests':>8}  "
          f"{'compute/logging/storage/other':<38} | {'naive s':>7} {'cpu s':>5} {'sim s':>5} {'requests':>8} | "
          f"{'req ratio':>9} {'time ratio':>10}")
    rows: list[tuple[int, Measured, Measured]] = []
    kept = None   # the largest node stays up for --profile
    pages: list[tuple[int, str]] = []
    bundled: Measured | None = None
    for size in sizes:
        node = busy_node(size, entries)
        try:
            pages.append((size, expected_pages(node)))
            runs = [run_verify(node.url) for _ in range(repeat)]
            naive = run_naive(node.url, list(node.sim.state.extras["seed"].instances))
            if size == sizes[-1] and not args.quick:
                bundled = run_bundled(node.url)
        finally:
            if args.profile and size == sizes[-1]:
                kept = node
            else:
                node.sim.stop()
        verify = sorted(runs, key=lambda m: m.seconds)[len(runs) // 2]
        verdicts = {m.verdict for m in runs}
        # --no-probes leaves SOV-02/SOV-03 SKIPPED, so a clean node is WARNED (PASS would mean the probes
        # were judged without being run; FAIL/INCOMPLETE that the busy node is not clean).
        if verdicts != {"WARNED"}:
            raise SystemExit(f"verify at {size} VMs gave {verdicts}, expected WARNED (clean but for the probes "
                             "--no-probes skips): the busy node must stay clean")
        by_api = " ".join(f"{k}={verify.requests.get(k, 0)}" for k in ("compute", "logging", "storage"))
        by_api += f" other={verify.total - sum(verify.requests.get(k, 0) for k in ('compute', 'logging', 'storage'))}"
        spread = f" (runs: {', '.join(f'{m.seconds:.2f}' for m in runs)})" if repeat > 1 else ""
        print(f"{size:>5} {node.window_entries:>8} | {verify.seconds:>8.2f} {verify.cpu_seconds:>5.2f} "
              f"{verify.sim_cpu_seconds:>5.2f} {verify.collect_seconds or 0:>9.2f} {verify.total:>8}  {by_api:<38} | "
              f"{naive.seconds:>7.2f} {naive.cpu_seconds:>5.2f} {naive.sim_cpu_seconds:>5.2f} {naive.total:>8} | "
              f"{naive.total / verify.total:>8.1f}x {naive.seconds / verify.seconds:>9.2f}x{spread}")
        rows.append((size, verify, naive))
    print("\n# req ratio = naive requests / verify requests; time ratio = naive wall / verify wall "
          "(both fresh processes);\n# cpu s = the client process's user+system time; sim s = the simulator's (this process) meanwhile.")
    if len(rows) > 1:
        (small, v0, n0), (large, v1, n1) = rows[0], rows[-1]
        print(f"# {small} -> {large} VMs ({large / small:.0f}x): verify requests x{v1.total / v0.total:.2f}, "
              f"naive requests x{n1.total / n0.total:.1f}; verify wall x{v1.seconds / v0.seconds:.2f}")
    if bundled is not None:
        print(f"# with --out DIR --sign-key KEY (evidence bundle, HTML/JUnit/SARIF, signed attestation) at "
              f"{sizes[-1]} VMs: {bundled.seconds:.2f} s wall, {bundled.cpu_seconds:.2f} s CPU, {bundled.total} "
              f"requests")
    print("# pages each size needs (Logging pages of 1000 entries, aggregatedList pages of 500 VMs):")
    for size, text in pages:
        print(f"#   {size:>5} VMs: {text}")
    largest, verify, _ = rows[-1]
    met = verify.seconds <= GOAL_SECONDS and verify.total <= GOAL_REQUESTS
    print(f"# goal at {largest} VMs: <= {GOAL_SECONDS:.0f} s and <= {GOAL_REQUESTS} requests -> "
          f"{verify.seconds:.2f} s, {verify.total} requests: {'met' if met else 'NOT met'}"
          f"{'' if largest >= 1000 else ' (goal is stated for 1000 VMs)'}")
    if kept is not None:
        try:
            trace_verify(kept.sim)
            profile_verify(kept.url, args.top)
        finally:
            kept.sim.stop()

if __name__ == "__main__":
    main()
