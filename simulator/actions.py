"""Scenario actions: an insider's API calls, replayed through the simulator's own REST handlers.

A staged attack is most faithful when it goes through the same handlers a client reaches: the
perimeter, the org policy and IAM judge it, and the audit entries land where Google would write them
(in the project that owns the resource, or nowhere when logging is off). So a scenario lists the
calls (`seed.actions`) and this module plays them, in order, after the recorded run is seeded, each
at its moment inside (or around) the run's window and as its principal (`X-Sim-Principal`).

An action whose answer differs from its `expect`ed status (default: any 2xx) stops the simulator
with an error naming the action: a scenario that claims to stage a route must really stage it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sovaudit.simulator import clock
from sovaudit.simulator import schema as s
from sovaudit.simulator.state import SimState

_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

ACTION_SPEC = s.Struct(
    required={
        # "POST /storage/v1/b/BUCKET/o": the path as a client sends it (placeholders such as
        # ${project_id} are substituted when the scenario is loaded).
        "call": s.Text(r"(GET|POST|PUT|PATCH|DELETE) /\S+", "METHOD /path, e.g. POST /bigquery/v2/projects/P/jobs"),
    },
    optional={
        "principal": s.Text(r"[^@\s]+@[^@\s]+|\$\{[a-z_]+\}", "an email such as mallory@example.org or ${service_account}"),
        # Minutes after the recorded job was created (it runs from ~3 to ~65 minutes); negative
        # values are before the job, values past 65 after it ended.
        "at_minutes": s.Check(s.AnyValue(), lambda v: None if isinstance(v, int | float) and not isinstance(v, bool)
                              else "must be a number of minutes, e.g. 40 or -5.5"),
        "params": s.MapOf(s.AnyValue()),
        "body": s.AnyValue(),                     # JSON body
        "data": s.Text(),                         # a raw (media) body instead of JSON
        "content_type": s.Text(),
        "expect": s.Integer(minimum=100),         # the HTTP status the call must get
        # The VPC network the call comes from (X-Sim-Caller-Network): "node" for a VM in the node's
        # network (an insider's or a guest's credentials used there), or projects/NUMBER. Omitted: the
        # node's own service accounts call from the node, other principals from outside every network.
        "network": s.Text(r"node|projects/\d+", "node or projects/NUMBER"),
        # The caller's IP address (X-Sim-Caller-Ip), for access levels with ipSubnetworks.
        "caller_ip": s.Text(r"[0-9a-fA-F.:]+", "an IP address such as 203.0.113.40"),
        "note": s.Text(),                         # why this call is part of the attack
    },
)


# Late placeholders, resolved when an action is played (the run's VM names depend on the seeded job uid,
# and fingerprints change with every mutation): ${vm:N} the name of the run's VM of task N,
# ${vm_zone:N} its zone, ${vm_fingerprint:N} / ${vm_label_fingerprint:N} / ${vm_nic0_fingerprint:N}
# the fingerprints Google demands back on update / setLabels / updateNetworkInterface, ${vm_id:N} its
# numeric id and ${vm_boot_time:N} its lastStartTimestamp (what a forged Shielded VM integrity entry names).
_LATE = re.compile(r"\$\{(vm|vm_zone|vm_id|vm_boot_time|vm_fingerprint|vm_label_fingerprint|vm_nic0_fingerprint):(\d+)\}")


def _resolve_late(value: Any, state: SimState) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            seeded = state.extras.get("seed")
            links = tuple(getattr(seeded, "instances", ()) or ())
            if not links:
                raise ActionFailed(f"{match.group(0)} names a VM of the run, but no run was seeded")
            link = str(links[int(match.group(2)) % len(links)])
            zone, name = link.split("/zones/", 1)[1].split("/instances/")
            kind = match.group(1)
            if kind == "vm":
                return name
            if kind == "vm_zone":
                return zone
            with state.lock:
                vm = state.instances.get((zone, name)) or {}
                if kind == "vm_id":
                    return str(vm.get("id", ""))
                if kind == "vm_boot_time":
                    return str(vm.get("lastStartTimestamp", ""))
                if kind == "vm_fingerprint":
                    return str(vm.get("fingerprint", ""))
                if kind == "vm_label_fingerprint":
                    return str(vm.get("labelFingerprint", ""))
                return str(((vm.get("networkInterfaces") or [{}])[0]).get("fingerprint", ""))
        return _LATE.sub(replace, value)
    if isinstance(value, list):
        return [_resolve_late(item, state) for item in value]
    if isinstance(value, dict):
        return {key: _resolve_late(item, state) for key, item in value.items()}
    return value


class ActionFailed(RuntimeError):
    """A scenario action did not get the answer its scenario expects."""


def run_actions(state: SimState, actions: Sequence[Mapping[str, Any]]) -> list[int]:
    """Play each action through the REST app; returns the statuses (for tests)."""
    if not actions:
        return []
    from werkzeug.test import Client

    from sovaudit.simulator.server import SimApp, build_router

    app = SimApp(state, build_router())
    client = Client(app)
    seeded = state.extras.get("seed")
    start = clock.parse(seeded.window_start) if seeded is not None else clock.now()
    statuses = []
    for number, action in enumerate(actions, 1):
        action = _resolve_late(dict(action), state)
        method, _, path = str(action["call"]).partition(" ")
        moment = start + timedelta(minutes=float(action.get("at_minutes", 40)))
        headers = {"X-Sim-Principal": str(action.get("principal") or state.node.get("service_account") or "")}
        if action.get("network"):
            headers["X-Sim-Caller-Network"] = str(action["network"])
        if action.get("caller_ip"):
            headers["X-Sim-Caller-Ip"] = str(action["caller_ip"])
        kwargs: dict[str, Any] = {"headers": headers, "query_string": {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in (action.get("params") or {}).items()}}
        if "data" in action:
            kwargs["data"] = str(action["data"]).encode()
            kwargs["content_type"] = str(action.get("content_type") or "application/octet-stream")
        elif "body" in action:
            kwargs["data"] = json.dumps(action["body"])
            kwargs["content_type"] = "application/json"
        with clock.pinned(moment):
            response = client.open(path, method=method, **kwargs)
        status = response.status_code
        expected = action.get("expect")
        if (expected is not None and status != expected) or (expected is None and not 200 <= status < 300):
            raise ActionFailed(
                f"scenario action {number} ({action['call']}) answered {status}, expected "
                f"{expected if expected is not None else '2xx'}: {response.get_data(as_text=True)[:400]}")
        statuses.append(status)
    return statuses
