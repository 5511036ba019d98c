"""The simulator's HTTP server: one Werkzeug WSGI app on loopback, in a background thread.

`SimServer` is what `sovaudit sim serve`, `sovaudit demo`, the tests and the benchmarks start.
"""

from __future__ import annotations

import importlib
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from sovaudit.simulator.http import ApiError, Router, SimRequest, error_response, json_response, rpc_error
from sovaudit.simulator.state import SimState

# One module per simulated API, each with `register(router)`. Add a line when an API lands.
API_MODULES: tuple[str, ...] = ()


class SimApp:
    """The WSGI application: routes a request, counts it, renders errors in Google's shape."""

    def __init__(self, state: SimState, router: Router):
        self.state = state
        self.router = router
        self.base_url = ""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
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
        try:
            result = route.handler(sim_request)
        except ApiError as error:
            return error_response(error)
        except Exception as exc:  # a simulator bug must look like a server error, not hang a client
            traceback.print_exc()
            return error_response(rpc_error(500, f"simulator internal error: {exc!r}"))
        if isinstance(result, Response):
            return result
        return json_response(result)

    def _count(self, api: str) -> None:
        with self.state.lock:
            self.state.stats[api] += 1

    def stats(self) -> dict[str, Any]:
        with self.state.lock:
            by_api = dict(self.state.stats)
        return {"requests": sum(v for k, v in by_api.items()), "by_api": by_api}


def build_router(modules: Sequence[str] = API_MODULES) -> Router:
    router = Router()
    for name in modules:
        importlib.import_module(f"sovaudit.simulator.api.{name}").register(router)
    return router


class SimServer:
    """A running simulator; use as a context manager. `url` is what clients get as api_endpoint."""

    def __init__(self, state: SimState, *, host: str = "127.0.0.1", port: int = 0,
                 router: Router | None = None):
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError(f"the simulator serves loopback only, not {host!r}")
        self.state = state
        self.app = SimApp(state, router or build_router())
        self._server: BaseWSGIServer = make_server(host, port, self.app, threaded=True)
        self.port = int(self._server.server_port)
        self.url = f"http://{host}:{self.port}"
        self.app.base_url = self.url
        self._thread: threading.Thread | None = None

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sovaudit-sim", daemon=True)
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
