"""The simulator's HTTP server: one Werkzeug WSGI app on loopback, in a background thread.

`SimServer` is what `sovaudit sim serve`, `sovaudit demo`, the tests and the benchmarks start
(most callers use `sovaudit.simulator.start(...)`). Besides routing, the app applies the runtime
fault hooks a scenario sets in `state.options`: `latency` ({api: milliseconds}) and `faults`
(see `simulator/faults.py`: errors in the API's own shape, Retry-After, bursts that clear after
`times`, per-method latency, dropped connections, expired page tokens, permission errors).
"""

from __future__ import annotations

import errno
import importlib
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sovaudit.simulator import enforcement, vpcsc
from sovaudit.simulator.enums import to_numeric_enums, wants_numeric_enums
from sovaudit.simulator.faults import DropConnection, FaultInjector
from sovaudit.simulator.http import (
    ApiError,
    Router,
    SimRequest,
    error_response,
    json_response,
    rpc_error,
)
from sovaudit.simulator.state import SimState

# One module per simulated API, each with `register(router)`. Add a line when an API lands.
API_MODULES: tuple[str, ...] = (
    "orgpolicy",
    "resourcemanager",
    "hierarchy_api",
    "kms",
    "acm",
    "acm_write",
    "logging_api",
    "logging_config",
    "compute",
    "compute_mutations",
    "network",
    "batch",
    "storage",
    "bigquery",
    "assured_workloads",
    "confidentialcomputing",
)

# Response messages of routes registered without `response_type=` (see http.Route): the GAPIC REST
# clients of these APIs ask for numeric enums, and Google answers with them. Keyed by (api, method, rule).
_BATCH_TYPES = "google.cloud.batch_v1.types"
_JOBS_RULE = "/v1/projects/<project>/locations/<location>/jobs"
DEFAULT_RESPONSE_TYPES: dict[tuple[str, str, str], str] = {
    ("batch", "POST", _JOBS_RULE): f"{_BATCH_TYPES}:Job",
    ("batch", "GET", _JOBS_RULE): f"{_BATCH_TYPES}:ListJobsResponse",
    ("batch", "GET", f"{_JOBS_RULE}/<job>"): f"{_BATCH_TYPES}:Job",
    ("batch", "GET", f"{_JOBS_RULE}/<job>/taskGroups/<group>/tasks"): f"{_BATCH_TYPES}:ListTasksResponse",
    ("batch", "GET", f"{_JOBS_RULE}/<job>/taskGroups/<group>/tasks/<task>"): f"{_BATCH_TYPES}:Task",
}


class SimApp:
    """The WSGI application: routes a request, counts it, renders errors in Google's shape."""

    def __init__(self, state: SimState, router: Router):
        self.state = state
        self.router = router
        self.base_url = ""
        self.faults = FaultInjector()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except DropConnection as dropped:
            # Close the socket with no status line, as a reset proxy would; Werkzeug treats the
            # ConnectionError as a dropped client and writes nothing more.
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            raise ConnectionAbortedError(str(dropped)) from dropped
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path == "/_sim/stats":
            return json_response(self.stats())
        try:
            route, path_args = self.router.match(request)
        except ApiError as error:
            self._count("unrouted")
            return error_response(error)
        self._count(route.api)
        sim_request = SimRequest(request, path_args, self.state, route.api, self.base_url)
        network = vpcsc.CALLER_NETWORK.set(request.headers.get("X-Sim-Caller-Network") or None)
        try:
            self._apply_faults(route.api, request)
            enforcement.check_api_call(self.state, route.api, request.method, request.path,
                                       request.headers.get("X-Sim-Principal"), request.headers.get("X-Sim-Caller-Ip"))
            result = route.handler(sim_request)
        except ApiError as error:
            return error_response(error)
        except DropConnection:
            raise
        except Exception as exc:  # a simulator bug must look like a server error, not hang a client
            traceback.print_exc()
            return error_response(rpc_error(500, f"simulator internal error: {exc!r}"))
        finally:
            vpcsc.CALLER_NETWORK.reset(network)
        if isinstance(result, Response):
            return result
        response_type = route.response_type or DEFAULT_RESPONSE_TYPES.get((route.api, route.method, route.rule))
        if response_type and wants_numeric_enums(request.args.get("$alt")):
            result = to_numeric_enums(result, response_type)
        return json_response(result)

    def _apply_faults(self, api: str, request: Request) -> None:
        """Scenario hooks: sleep for the API's latency, then apply the first injected fault that fires."""
        options = self.state.options
        delay_ms = (options.get("latency") or {}).get(api)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        self.faults.apply(options.get("faults") or (), api, request)

    def _count(self, api: str) -> None:
        with self.state.lock:
            self.state.stats[api] += 1

    def stats(self) -> dict[str, Any]:
        with self.state.lock:
            by_api = dict(self.state.stats)
        return {"requests": sum(v for k, v in by_api.items()), "by_api": by_api,
                "faults_injected": self.faults.injected()}


def build_router(modules: Sequence[str] = API_MODULES) -> Router:
    router = Router()
    for name in modules:
        importlib.import_module(f"sovaudit.simulator.api.{name}").register(router)
    return router


class _QuietHandler(WSGIRequestHandler):
    """No access-log line per request: thousands of calls per test run would drown real output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _check_bindable(host: str, port: int) -> None:
    """Raise the bind's own OSError (EADDRINUSE, EACCES) before Werkzeug tries: Werkzeug prints its
    own lines to stderr and exits the process, which a library must not do and a user should not read."""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As Werkzeug's server does: a port in TIME_WAIT from an earlier run is free to serve on.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


class SimServer:
    """A running simulator; use as a context manager. `url` is what clients get as api_endpoint.

    Pass a ready `SimState`, or a node (`"us"`, `"eu"` or a node file path) plus scenarios, and the
    server loads, validates and seeds it (the same as `sovaudit.simulator.start`, without starting).
    """

    def __init__(self, state: SimState | str | Path | None = None, *, node: str | Path | None = None,
                 scenarios: Sequence[str | Path] = (),
                 job_tasks: int = 10, task_runner: Callable[[Any], Any] | None = None,
                 batch_refusal: str = "submit", host: str = "127.0.0.1", port: int = 0,
                 router: Router | None = None):
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError(f"the simulator serves loopback only, not {host!r}")
        if state is not None and node is not None:
            raise TypeError("give either a SimState or a node, not both")
        live = state if isinstance(state, SimState) else load_seeded_state(
            node or state or "us", scenarios, job_tasks=job_tasks, batch_refusal=batch_refusal)
        if task_runner is not None:
            live.task_runner = task_runner
        self.state = live
        self.app = SimApp(live, router or build_router())
        _check_bindable(host, port)
        try:
            self._server: BaseWSGIServer = make_server(host, port, self.app, threaded=True,
                                                       request_handler=_QuietHandler)
        except SystemExit as exc:   # Werkzeug exits the process when the port is taken; we are a library
            raise OSError(errno.EADDRINUSE, f"port {port} on {host} is in use or cannot be bound") from exc
        self.port = int(self._server.server_port)
        self.url = f"http://{host}:{self.port}"
        self.app.base_url = self.url
        self._thread: threading.Thread | None = None

    def start(self) -> SimServer:
        """Serve in a background thread; a no-op when already serving (so `with start(...)` is safe)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sovaudit-sim", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_node_dir() -> Path:
    return Path(__file__).with_name("nodes")


def load_seeded_state(node: str | Path = "us", scenarios: Sequence[str | Path] = (), *, job_tasks: int = 10,
                      batch_refusal: str = "submit") -> SimState:
    """Node file + scenarios → validated, seeded state. Raises `node.NodeFileError` for bad files."""
    from sovaudit.simulator import node as node_files
    from sovaudit.simulator import seed as seeding

    state, loaded = node_files.load_state(node, scenarios, job_tasks=job_tasks, batch_refusal=batch_refusal)
    seeding.seed(state, seeding.SeedOptions.from_mapping(loaded.seed, job_tasks=job_tasks))
    from sovaudit.simulator.actions import ActionFailed, run_actions

    try:
        run_actions(state, loaded.seed.get("actions") or ())
    except ActionFailed as failed:
        names = ", ".join(str(sc.path) for sc in loaded.scenarios) or str(loaded.path)
        raise node_files.NodeFileError(names, [("seed.actions", str(failed))]) from failed
    return state
