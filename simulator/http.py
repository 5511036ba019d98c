"""HTTP plumbing shared by every simulated API: routing, JSON bodies and Google's error shapes.

Each API module registers its routes on one `Router`; handlers receive a `SimRequest` and return a
JSON-able object (200) or a `Response`, or raise `ApiError`. Errors are rendered in the two shapes
real Google APIs use, because the official clients parse them: the "classic" JSON API shape
(Compute, Storage, BigQuery: `errors[].reason`) and the gRPC-transcoded shape (Batch, Org Policy,
Logging, KMS: `status` + typed `details`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from sovaudit.simulator.state import SimState

# gRPC status name for each HTTP code the simulator emits.
RPC_STATUS_FOR_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


# The `api=` names whose errors use the classic JSON-API shape (`errors[].reason`); the others are
# gRPC-transcoded (`status` + `details`).
CLASSIC_ERROR_APIS = frozenset({"compute", "storage", "bigquery"})


class ApiError(Exception):
    """An error answer with Google's JSON body; raise it from any handler."""

    def __init__(self, code: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None):
        super().__init__(json.dumps(body))
        self.code = code
        self.body = dict(body)
        self.headers = dict(headers or {})

    @property
    def message(self) -> str:
        return str(self.body.get("error", {}).get("message", ""))


def classic_error(code: int, message: str, reason: str, *, domain: str = "global",
                  location: str | None = None, location_type: str | None = None) -> ApiError:
    """Compute / Storage / BigQuery style: `{"error": {"code", "message", "errors": [{reason, ...}]}}`."""
    detail: dict[str, Any] = {"message": message, "domain": domain, "reason": reason}
    if location:
        detail["location"] = location
        detail["locationType"] = location_type or "parameter"
    return ApiError(code, {"error": {"code": code, "message": message, "errors": [detail]}})


def rpc_error(code: int, message: str, *, status: str | None = None,
              details: list[dict[str, Any]] | None = None) -> ApiError:
    """gRPC-transcoded style: `{"error": {"code", "message", "status", "details": [...]}}`."""
    error: dict[str, Any] = {"code": code, "message": message,
                             "status": status or RPC_STATUS_FOR_HTTP.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return ApiError(code, {"error": error})


def not_found(message: str, *, classic: bool = False) -> ApiError:
    return classic_error(404, message, "notFound") if classic else rpc_error(404, message)


@dataclass
class SimRequest:
    """One incoming call, with the path variables and the live simulator state."""

    http: Request
    path_args: dict[str, str]
    state: SimState
    api: str
    base_url: str
    _json: Any = field(default=None, init=False)

    @property
    def args(self) -> Mapping[str, str]:
        return self.http.args

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.http.args.get(name, default)

    def json(self) -> Any:
        """The request body as JSON; a 400 in Google's shape when it is not JSON."""
        if self._json is None:
            raw = self.http.get_data(cache=True)
            if not raw:
                self._json = {}
            else:
                try:
                    self._json = json.loads(raw)
                except json.JSONDecodeError as exc:
                    message = f"Invalid JSON payload received. {exc}"
                    if self.api in CLASSIC_ERROR_APIS:
                        raise classic_error(400, message, "parseError") from exc
                    raise rpc_error(400, message) from exc
        return self._json


Handler = Callable[[SimRequest], Any]


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    handler: Handler
    api: str
    # The response's proto message ("module:Class"), for APIs whose generated REST clients ask for
    # numeric enums (`$alt=json;enum-encoding=int`); None = answer as the handler returned it.
    response_type: str | None = None


class Router:
    """All routes of the simulator; API modules call `add` from their `register(router)`."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._map: Map | None = None

    def add(self, method: str, rule: str, handler: Handler, *, api: str, response_type: str | None = None) -> None:
        self._routes.append(Route(method.upper(), rule, handler, api, response_type))
        self._map = None

    def url_map(self) -> Map:
        if self._map is None:
            rules = [
                Rule(r.rule, endpoint=index, methods=[r.method], strict_slashes=False)
                for index, r in enumerate(self._routes)
            ]
            self._map = Map(rules, merge_slashes=False)
        return self._map

    def match(self, request: Request) -> tuple[Route, dict[str, str]]:
        adapter = self.url_map().bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except MethodNotAllowed as exc:
            raise rpc_error(405, f"Method {request.method} not allowed on {request.path}") from exc
        except NotFound as exc:
            raise rpc_error(404, f"The simulator does not serve {request.method} {request.path}",
                            status="NOT_FOUND") from exc
        except HTTPException as exc:  # e.g. a redirect for a trailing slash
            raise rpc_error(exc.code or 400, str(exc)) from exc
        return self._routes[int(endpoint)], dict(args)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status,
                    headers=dict(headers or {}), mimetype="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(error.body, error.code, error.headers)
