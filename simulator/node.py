"""Node files and scenarios → the simulator's live state.

A node file (`simulator/nodes/us.yaml`) describes one sovereign node with Google's REST JSON for each
resource, keyed by role (`buckets.raw`, `dataset`, `perimeter`...). A scenario
(`simulator/scenarios/<name>.yaml`) is a declarative overlay that injects one violation or fault:

```yaml
name: vm-public-ip                 # must equal the file name
description: One VM of the finished job has an external IPv4 address.
fails: [SEC-02]                    # controls this scenario must make FAIL
errors: []                         # controls it must make ERROR (evidence incomplete)
node: {...}                        # deep-merged into the node file: mappings merge, lists and
                                   #   scalars replace, `null` deletes the key
seed: {...}                        # options for the finished job's seed (see seed.SEED_SPEC)
options: {...}                     # runtime behaviour: faults, latency, batch_refusal, max_page_size
```

Strings in a scenario may use `${project_id}`, `${project_number}`, `${region}`, `${zone}`,
`${service_account}`, `${default_service_account}`, `${foreign_bucket}`, `${foreign_project_number}`,
`${foreign_project_id}`, `${access_policy}`, `${perimeter}` and `${network}`, so one scenario fits
every node.

VPC Service Controls in a node file: `perimeter` is the node's own (its `config` a full
ServicePerimeterConfig: resources, restrictedServices, accessLevels, vpcAccessibleServices,
ingressPolicies, egressPolicies; `mode` enforced = `status`, dry-run = only `spec`; an optional
`spec` beside an enforced status is a pending dry-run change); `extra_perimeters` are the access
policy's other perimeters as REST JSON (other projects' regular ones, bridges); `access_levels` the
policy's levels; `groups` resolves `group:` identities; `foreign_projects` and `foreign_buckets`
say which project owns what (simulator/projects.py). Requests are judged in simulator/vpcsc.py. The merged node file is validated again, so a scenario cannot produce a broken node.
Every problem is reported as `NodeFileError` naming the file and the dotted field.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sovaudit.simulator import hierarchy, log_router, staff_access
from sovaudit.simulator import schema as s
from sovaudit.simulator.api.assured_workloads import WORKLOADS_SPEC
from sovaudit.simulator.faults import FAULTS_SPEC
from sovaudit.simulator.seed import SEED_SPEC
from sovaudit.simulator.state import SimState

NODE_DIR = Path(__file__).with_name("nodes")
SCENARIO_DIR = Path(__file__).with_name("scenarios")
CONTROL_ID = r"[A-Z]{2,4}-\d{2}"
PROJECT_ID = r"[a-z][-a-z0-9]{4,28}[a-z0-9]"
REGION = r"[a-z]+-[a-z]+\d+"
RESTRICTABLE = ("storage.googleapis.com", "bigquery.googleapis.com", "batch.googleapis.com",
                "compute.googleapis.com", "logging.googleapis.com")
# The simulator's "created long ago" instant for node resources (buckets, keys, the project...).
NODE_CREATED = "2026-01-15T09:30:00.000Z"


class NodeFileError(ValueError):
    """A node or scenario file is unusable; names the file and the field, and says how to fix it."""

    def __init__(self, file: str | Path, problems: Sequence[tuple[str, str]]):
        self.file = str(file)
        self.problems = list(problems)
        # "(name)"/"(file)" stand for the thing itself, not a field: "scenario nope: is not a known scenario".
        lines = [f"{self.file}: {message}" if path.startswith("(") else f"{self.file}: field '{path}': {message}"
                 for path, message in self.problems]
        super().__init__("\n".join(lines))

    @property
    def field(self) -> str:
        return self.problems[0][0] if self.problems else ""


def _rest(required: Mapping[str, s.Spec] | None = None) -> s.Struct:
    return s.Struct(required=required or {}, open=True)


# Sink, exclusion and log bucket ids: letters, digits, `_-.`, starting with a letter, digit or `_`.
_LOG_ID = r"[A-Za-z0-9_][-A-Za-z0-9_.]{0,99}"

_BUCKET = _rest({
    "name": s.Text(r"[a-z0-9][-_.a-z0-9]{1,61}[a-z0-9]", "a bucket name"),
    "location": s.Text(r"[A-Z0-9-]+", "an upper-case GCS location such as US-CENTRAL1 or US"),
    "locationType": s.OneOf(("region", "multi-region", "dual-region")),
})

PERIMETER_NAME = r"accessPolicies/\d+/servicePerimeters/[A-Za-z][A-Za-z0-9_]*"
_PERIMETER_CONFIG = _rest({
    # projects/NUMBER, or a VPC network //compute.googleapis.com/projects/ID/global/networks/NAME
    "resources": s.ListOf(s.Text(r"(projects|folders)/\d+|//compute\.googleapis\.com/projects/[^/]+/global/networks/[^/]+",
                                 "projects/<number>, folders/<number> or //compute.googleapis.com/projects/P/global/networks/N")),
    "restrictedServices": s.ListOf(s.Text())})


# The node network's other resources (simulator/api/network.py builds them), each a mapping keyed by
# name so a scenario adds one without restating the rest; values are Google's REST JSON. A null removes one.
_NAMED = s.MapOf(s.Check(s.AnyValue(), lambda v: None if v is None or isinstance(v, dict)
                         else "must be a mapping of REST fields (or null to remove it)"))
NETWORK_RESOURCES: dict[str, s.Spec] = {
    "private_ip_google_access": s.Boolean(),
    "subnetworks": _NAMED,        # more subnets of the node network: {region, ipCidrRange, privateIpGoogleAccess}
    "other_networks": s.MapOf(s.Struct(optional={"subnetworks": _NAMED})),
    "routes": _NAMED,             # static routes: {destRange, nextHopGateway|nextHopInstance|..., priority, network}
    "firewalls": _NAMED,          # firewall rules: {direction, priority, allowed|denied, destinationRanges, ...}
    "routers": _NAMED,            # Cloud Routers: {region, network, nats: [RouterNat]}
    "other_instances": _NAMED,    # VMs besides the job's: {zone, machineType, networkInterfaces, ...}
    "peerings": _NAMED,           # VPC Network Peerings of the node network: {network: URL of the peer, ...}
}

NODE_SPEC = s.Struct(
    required={
        "apiVersion": s.OneOf(("sovaudit/sim-node/v1",)),
        "kind": s.OneOf(("SimNode",)),
        "name": s.Text(r"[a-z][-a-z0-9]*", "a short lower-case name"),
        "project": s.Struct(
            required={"id": s.Text(PROJECT_ID, "a project id"),
                      "number": s.Text(r"\d{6,19}", "a quoted project number such as \"314159265358\""),
                      "organization": s.Text(r"organizations/\d+", "organizations/<number>")},
            # The project's parent (default the organization): a folder declared under `hierarchy`.
            optional={"display_name": s.Text(),
                      "parent": s.Text(r"(organizations|folders)/\d+", "organizations/<number> or folders/<number>")}),
        "region": s.Text(REGION, "a region such as us-central1"),
        "zones": s.ListOf(s.Text(rf"{REGION}-[a-z]", "a zone such as us-central1-a"), min_items=1),
        # Per constraint: the spec's fields (rules, inheritFromParent, reset) and an optional dryRunSpec.
        "org_policies": hierarchy.ORG_POLICIES_SPEC,
        "network": s.Struct(required={"name": s.Text(), "subnetwork": s.Text()},
                            optional={"ip_cidr_range": s.Text(r"\d+\.\d+\.\d+\.\d+/\d+", "a CIDR range"),
                                      **NETWORK_RESOURCES}),
        "service_account": s.Text(r"[^@\s]+@[^@\s]+", "a service account email"),
        "default_service_account": s.Text(r"\d+-compute@developer\.gserviceaccount\.com",
                                          "NUMBER-compute@developer.gserviceaccount.com"),
        "kms": s.Struct(required={
            "key_ring": s.Text(r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+",
                               "projects/P/locations/L/keyRings/R"),
            "keys": s.MapOf(s.Struct(
                required={"purpose": s.OneOf(("ENCRYPT_DECRYPT", "ASYMMETRIC_SIGN"))},
                optional={"algorithm": s.OneOf(("GOOGLE_SYMMETRIC_ENCRYPTION", "EC_SIGN_P256_SHA256")),
                          # CryptoKey.keyAccessJustificationsPolicy (SOV-08); {} allows no reason at all.
                          "keyAccessJustificationsPolicy": staff_access.KEY_POLICY_SPEC}),
                min_items=1)},
            # Symmetric keys outside the node's key ring (e.g. in another location), by full name.
            optional={"other_keys": s.ListOf(s.Text(
                r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+",
                "projects/P/locations/L/keyRings/R/cryptoKeys/K"))}),
        "buckets": s.Struct(required={"raw": _BUCKET, "processed": _BUCKET}),
        "dataset": _rest({"id": s.Text(r"[A-Za-z0-9_]{1,1024}", "a dataset id (letters, digits, _)"),
                          "location": s.Text(), "table": s.Text(r"[A-Za-z0-9_]+", "a table id")}),
        "access_policy": s.Struct(required={"name": s.Text(r"accessPolicies/\d+", "accessPolicies/<number>"),
                                            "title": s.Text()}),
        "perimeter": s.Struct(required={
            "name": s.Text(PERIMETER_NAME, "accessPolicies/N/servicePerimeters/NAME"),
            "title": s.Text(),
            "mode": s.OneOf(("enforced", "dry-run")),
            # A ServicePerimeterConfig as accesscontextmanager v1 spells it: resources,
            # restrictedServices, accessLevels, vpcAccessibleServices, ingressPolicies, egressPolicies.
            "config": _PERIMETER_CONFIG},
            # With mode enforced: a pending dry-run spec beside the enforced status
            # (useExplicitDryRunSpec: true), e.g. a wider configuration waiting to be committed.
            optional={"spec": _PERIMETER_CONFIG, "description": s.Text()}),
        "iam_policy": s.Struct(required={"bindings": s.ListOf(_rest({"role": s.Text(), "members": s.ListOf(s.Text())}))},
                               optional={"auditConfigs": s.ListOf(_rest({
                                   "service": s.Text(),
                                   "auditLogConfigs": s.ListOf(_rest({"logType": s.OneOf(
                                       ("ADMIN_READ", "DATA_WRITE", "DATA_READ"))}))}))}),
        "instance_template": s.Struct(required={"name": s.Text(r"[a-z][-a-z0-9]*", "a template name"),
                                                "properties": _rest({"machineType": s.Text()})},
                                      optional={"description": s.Text()}),
        "job": s.Struct(required={"id": s.Text(r"[a-z][-a-z0-9]{0,61}[a-z0-9]", "a Batch job id"),
                                  "labels": s.MapOf(s.Text())},
                        # attest: the job's tasks stored Confidential Computing tokens (CC-05; seed_attestation.py)
                        optional={"image": s.Text(), "attest": s.Boolean()}),
    },
    optional={
        # Folders and the organization above the project, with their IAM policies (auditConfigs) and org
        # policies (simulator/hierarchy.py); `project.parent` names the project's own parent.
        "hierarchy": hierarchy.HIERARCHY_SPEC,
        # Projects outside the node (another team's, another jurisdiction's): their audit entries are
        # theirs, never listed by the node's entries.list. `auditConfigs` as in an IAM policy.
        "foreign_projects": s.ListOf(s.Struct(
            required={"id": s.Text(PROJECT_ID, "a project id"),
                      "number": s.Text(r"\d{6,19}", "a quoted project number")},
            optional={"organization": s.Text(r"organizations/\d+", "organizations/<number>"),
                      "auditConfigs": s.ListOf(_rest({"service": s.Text()}))})),
        # Cloud Logging routing (simulator/log_router.py): user log buckets by id (and the location of
        # `_Required`/`_Default` when an organization setting moved them), sinks by id (`_Default`
        # patches the default sink), project exclusions by id. Omitted: both default sinks into `global`.
        "logging": s.Struct(optional={
            "buckets": s.MapOf(s.Struct(optional={"location": s.Text(r"global|[a-z]+(?:-[a-z]+\d+)?",
                                                                     "global, a region or a multi-region")},
                                        open=True), key_pattern=_LOG_ID),
            "sinks": s.MapOf(s.Struct(optional={"destination": s.Text(), "filter": s.Text(),
                                                "disabled": s.Boolean(),
                                                "exclusions": s.ListOf(_rest({"name": s.Text(_LOG_ID, "an id"),
                                                                              "filter": s.Text()}))},
                                      open=True), key_pattern=_LOG_ID),
            "exclusions": s.MapOf(_rest({"filter": s.Text()}), key_pattern=_LOG_ID),
        }),
        # Other perimeters of the access policy, as ServicePerimeter REST JSON: other projects' regular
        # perimeters, bridges (perimeterType PERIMETER_TYPE_BRIDGE) holding the node's project.
        "extra_perimeters": s.ListOf(_rest({"name": s.Text(PERIMETER_NAME, "accessPolicies/N/servicePerimeters/NAME"),
                                            "title": s.Text()})),
        # Access levels of the access policy, as AccessLevel REST JSON (basic conditions: ipSubnetworks,
        # members, negate, requiredAccessLevels; combiningFunction AND|OR).
        "access_levels": s.ListOf(_rest({"name": s.Text(r"accessPolicies/\d+/accessLevels/[A-Za-z0-9_]+",
                                                         "accessPolicies/N/accessLevels/NAME"),
                                         "title": s.Text()})),
        # Google groups the simulator resolves for `group:` members, in perimeter rules (simulator/vpcsc.py)
        # and IAM bindings (simulator/iam.py): email -> members.
        "groups": s.MapOf(s.ListOf(s.Text(r"[^@\s]+@[^@\s]+", "a member email"))),
        "foreign_buckets": s.ListOf(s.Struct(required={"name": s.Text(), "project_number": s.Text(r"\d+", "digits"),
                                                       "location": s.Text()})),
        # Access (simulator/iam.py; `groups` above serves it too): buckets and datasets of the node's
        # project beyond the pipeline's two buckets and one dataset (another team's, or one made before
        # the org policy); bucket IAM policies by role (raw, processed) or name.
        "extra_buckets": s.ListOf(_BUCKET),
        "extra_datasets": s.ListOf(_rest({"id": s.Text(r"[A-Za-z0-9_]{1,1024}", "a dataset id"),
                                          "location": s.Text()})),
        "bucket_iam": s.MapOf(s.ListOf(_rest({"role": s.Text(), "members": s.ListOf(s.Text())}))),
        # Other projects' BigQuery datasets (the project listed in foreign_projects): a job of the node
        # may name them as a destination or source, as it could on Google when the perimeter lets it.
        # Assured Workloads workloads by id (simulator/api/assured_workloads.py): location, complianceRegime,
        # other Workload REST fields, and `violations` with times relative to the recorded job.
        "assured_workloads": WORKLOADS_SPEC,
        "foreign_datasets": s.ListOf(s.Struct(required={"project": s.Text(PROJECT_ID, "a project id"),
                                                        "dataset": s.Text(r"[A-Za-z0-9_]+", "a dataset id"),
                                                        "location": s.Text()})),
    },
)

RUNTIME_OPTIONS_SPEC = s.Struct(optional={
    "faults": FAULTS_SPEC,   # see simulator/faults.py
    "latency": s.MapOf(s.Integer(minimum=0), key_pattern=r"[a-z_]+"),   # api -> milliseconds
    "batch_refusal": s.OneOf(("submit", "fail")),
    "max_page_size": s.Integer(minimum=1),
    # Assured Workloads violations.list pages of at most this many (paging without slowing every other API).
    "aw_page_size": s.Integer(minimum=1),
})

SCENARIO_SPEC = s.Struct(
    required={"name": s.Text(r"[a-z][-a-z0-9]*", "a lower-case scenario name"),
              "description": s.Text(),
              "fails": s.ListOf(s.Text(CONTROL_ID, "a control id such as SEC-02"))},
    optional={"errors": s.ListOf(s.Text(CONTROL_ID, "a control id such as SEC-04")),
              "waived": s.ListOf(s.Text(CONTROL_ID, "a control id such as SOV-04")),
              "node": s.Struct(open=True),
              # Deep-merged into the node's shipped policy pack for verify (waivers, confidential type...);
              # the merged pack is validated by sovaudit.policies.pack.load_policy.
              "policy": s.Struct(open=True),
              "seed": SEED_SPEC,
              "options": RUNTIME_OPTIONS_SPEC},
)


@dataclass(frozen=True)
class Scenario:
    """One validated scenario overlay."""

    name: str
    description: str
    fails: tuple[str, ...]
    errors: tuple[str, ...]
    node_patch: Mapping[str, Any]
    seed: Mapping[str, Any]
    options: Mapping[str, Any]
    path: Path
    waived: tuple[str, ...] = ()
    policy_patch: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        summary = {"name": self.name, "description": self.description, "fails": list(self.fails),
                   "errors": list(self.errors)}
        if self.waived:
            summary["waived"] = list(self.waived)
        if self.policy_patch:   # JSON-safe: YAML reads an expiry as a date
            summary["policy"] = json.loads(json.dumps(dict(self.policy_patch), default=str))
        return summary


@dataclass(frozen=True)
class LoadedNode:
    """A node file after its scenarios: the merged document plus the seed and runtime options."""

    doc: dict[str, Any]
    path: Path
    scenarios: tuple[Scenario, ...]
    seed: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NodeFileError(path, [("(file)", f"cannot be read: {exc.strerror or exc}")]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise NodeFileError(path, [(where, f"is not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc


def resolve_node(node: str | Path) -> Path:
    """`us` / `eu` name a shipped node file; anything else is a path."""
    if isinstance(node, str) and re.fullmatch(r"[a-z][-a-z0-9]*", node) and (NODE_DIR / f"{node}.yaml").exists():
        return NODE_DIR / f"{node}.yaml"
    path = Path(node)
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in NODE_DIR.glob("*.yaml")))
        raise NodeFileError(path, [("(file)", f"does not exist; use a shipped node ({shipped}) or a path")])
    return path


def validate_node(doc: Any, path: Path | str) -> dict[str, Any]:
    problems = s.validate(doc, NODE_SPEC)
    if not problems:
        problems = _node_consistency(doc)
    if problems:
        raise NodeFileError(path, problems)
    return dict(doc)


def _node_consistency(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Cross-field rules that keep a node coherent (a zone of another region would silently mislead)."""
    problems = []
    region = doc["region"]
    for index, zone in enumerate(doc["zones"]):
        if not zone.startswith(region + "-"):
            problems.append((f"zones[{index}]", f"{zone!r} is not a zone of the region {region!r}"))
    expected = f"{doc['project']['number']}-compute@developer.gserviceaccount.com"
    if doc["default_service_account"] != expected:
        problems.append(("default_service_account", f"must be {expected!r} (the project number's default SA)"))
    if not doc["perimeter"]["name"].startswith(doc["access_policy"]["name"] + "/"):
        problems.append(("perimeter.name", f"must live under access_policy.name {doc['access_policy']['name']!r}"))
    if doc["perimeter"].get("spec") is not None and doc["perimeter"]["mode"] != "enforced":
        problems.append(("perimeter.spec", "a pending spec sits beside an enforced status: use it with mode "
                                           "enforced (mode dry-run already makes `config` the spec)"))
    for index, other in enumerate(doc.get("extra_perimeters") or ()):
        if not str(other.get("name", "")).startswith(doc["access_policy"]["name"] + "/"):
            problems.append((f"extra_perimeters[{index}].name",
                             f"must live under access_policy.name {doc['access_policy']['name']!r}"))
        if other.get("perimeterType") not in (None, "PERIMETER_TYPE_REGULAR", "PERIMETER_TYPE_BRIDGE"):
            problems.append((f"extra_perimeters[{index}].perimeterType",
                             "must be PERIMETER_TYPE_REGULAR or PERIMETER_TYPE_BRIDGE"))
        if other.get("perimeterType") == "PERIMETER_TYPE_BRIDGE":
            for key in ("status", "spec"):
                config = other.get(key) or {}
                for banned in ("restrictedServices", "accessLevels", "ingressPolicies", "egressPolicies"):
                    if config.get(banned):
                        problems.append((f"extra_perimeters[{index}].{key}.{banned}",
                                         "must be empty for a bridge (Access Context Manager refuses it)"))
    for index, level in enumerate(doc.get("access_levels") or ()):
        if not str(level.get("name", "")).startswith(doc["access_policy"]["name"] + "/"):
            problems.append((f"access_levels[{index}].name",
                             f"must live under access_policy.name {doc['access_policy']['name']!r}"))
    problems += _logging_consistency(doc.get("logging") or {})
    problems += hierarchy.consistency(doc)
    return problems


def _logging_consistency(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The `_Required` sink cannot be changed on Google, and every filter must parse (compiled here,
    so a typo in a scenario is reported against its field, not as a 400 in the middle of a seed)."""
    from sovaudit.simulator.logquery import LogQueryError, compile_filter

    problems = []
    if "_Required" in (spec.get("sinks") or {}):
        problems.append(("logging.sinks._Required", "the _Required sink cannot be modified (Google refuses it)"))
    filters = [(f"logging.sinks.{name}.filter", sink.get("filter")) for name, sink in (spec.get("sinks") or {}).items()]
    filters += [(f"logging.sinks.{name}.exclusions[{index}].filter", exclusion.get("filter"))
                for name, sink in (spec.get("sinks") or {}).items()
                for index, exclusion in enumerate(sink.get("exclusions") or [])]
    filters += [(f"logging.exclusions.{name}.filter", exclusion.get("filter"))
                for name, exclusion in (spec.get("exclusions") or {}).items()]
    for where, text in filters:
        if text:
            try:
                compile_filter(str(text))
            except LogQueryError as exc:
                problems.append((where, f"is not a valid Logging filter: {exc}"))
    return problems


def load_node_file(node: str | Path) -> tuple[dict[str, Any], Path]:
    path = resolve_node(node)
    return validate_node(_read_yaml(path), path), path


# --------------------------------------------------------------------------------------------- scenarios

def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def resolve_scenario(name: str | Path) -> Path:
    if isinstance(name, str) and (SCENARIO_DIR / f"{name}.yaml").exists():
        return SCENARIO_DIR / f"{name}.yaml"
    path = Path(name)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return path
    raise NodeFileError(f"scenario {name}", [("(name)", "is not a known scenario; known: "
                                                         + ", ".join(scenario_names()))])


def load_scenario(name: str | Path) -> Scenario:
    path = resolve_scenario(name)
    doc = _read_yaml(path)
    problems = s.validate(doc, SCENARIO_SPEC)
    if not problems and doc["name"] != path.stem:
        problems.append(("name", f"{doc['name']!r} must equal the file name {path.stem!r}"))
    if problems:
        raise NodeFileError(path, problems)
    return Scenario(name=doc["name"], description=doc["description"], fails=tuple(doc["fails"]),
                    errors=tuple(doc.get("errors") or ()), node_patch=doc.get("node") or {},
                    seed=doc.get("seed") or {}, options=doc.get("options") or {}, path=path,
                    waived=tuple(doc.get("waived") or ()), policy_patch=doc.get("policy") or {})


def list_scenarios() -> list[Scenario]:
    return [load_scenario(name) for name in scenario_names()]


def policy_overlay(scenario: Scenario, node: str | Path = "us") -> dict[str, Any]:
    """The scenario's `policy:` block with its placeholders filled in for `node` ({} when it has none)."""
    if not scenario.policy_patch:
        return {}
    doc, _ = load_node_file(node)
    return dict(_substitute(copy.deepcopy(dict(scenario.policy_patch)), _placeholders(doc), scenario.path))


def _placeholders(doc: Mapping[str, Any]) -> dict[str, str]:
    foreign = doc.get("foreign_buckets") or [{"name": f"{doc['project']['id']}-elsewhere"}]
    return {"project_id": doc["project"]["id"], "project_number": doc["project"]["number"],
            "region": doc["region"], "zone": doc["zones"][0], "service_account": doc["service_account"],
            "default_service_account": doc["default_service_account"], "foreign_bucket": foreign[0]["name"],
            "foreign_project_number": str(foreign[0].get("project_number") or "0"),
            "foreign_project_id": next((str(p["id"]) for p in doc.get("foreign_projects") or ()
                                        if str(p.get("number")) == str(foreign[0].get("project_number"))),
                                       f"project-{foreign[0].get('project_number') or 0}"),
            "access_policy": doc["access_policy"]["name"], "perimeter": doc["perimeter"]["name"],
            "network": doc["network"]["name"]}


def _substitute(value: Any, values: Mapping[str, str], path: Path) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise NodeFileError(path, [("(placeholder)", f"${{{key}}} is unknown; known: "
                                            + ", ".join(sorted(values)))])
            return values[key]
        return re.sub(r"\$\{([a-z_]+)\}", replace, value)
    if isinstance(value, list):
        return [_substitute(item, values, path) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, values, path) for key, item in value.items()}
    return value


def deep_merge(base: Any, patch: Any) -> Any:
    """Mappings merge key by key, `None` deletes, everything else replaces."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_scenarios(doc: dict[str, Any], path: Path, scenarios: Iterable[Scenario]) -> LoadedNode:
    merged = copy.deepcopy(doc)
    seed: dict[str, Any] = {}
    options: dict[str, Any] = {}
    applied = tuple(scenarios)
    for scenario in applied:
        values = _placeholders(merged)
        patch = _substitute(dict(scenario.node_patch), values, scenario.path)
        unknown = [key for key in patch if key not in NODE_SPEC.required and key not in NODE_SPEC.optional]
        if unknown:
            raise NodeFileError(scenario.path, [(f"node.{key}", "is not a node-file field") for key in unknown])
        merged = deep_merge(merged, patch)
        try:
            validate_node(merged, path)
        except NodeFileError as exc:
            raise NodeFileError(scenario.path, [(f"node.{f}", m) for f, m in exc.problems]) from exc
        for key, value in _substitute(dict(scenario.seed), values, scenario.path).items():
            if isinstance(value, list):
                seed[key] = [*seed.get(key, []), *value]
            else:
                seed[key] = value
        for key, value in _substitute(dict(scenario.options), values, scenario.path).items():
            options[key] = [*options.get(key, []), *value] if isinstance(value, list) else value
    return LoadedNode(doc=merged, path=path, scenarios=applied, seed=seed, options=options)


# --------------------------------------------------------------------------------------------- state

def numeric_id(*parts: str) -> str:
    """A stable 19-digit id, the shape of Compute/Storage numeric ids, derived from the resource name."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(1_000_000_000_000_000_000 + int.from_bytes(digest[:8], "big") % 8_000_000_000_000_000_000)


def _etag(*parts: str) -> str:
    return "Bw" + hashlib.sha256("/".join(parts).encode()).hexdigest()[:12].upper()


def iam_etag(*parts: str) -> str:
    """IAM etags are bytes (base64 in JSON); clients decode and re-encode them, so keep them valid."""
    return base64.b64encode(b"\x07" + hashlib.sha256("/".join(parts).encode()).digest()[:7]).decode()


def build_state(loaded: LoadedNode, *, job_tasks: int = 10, batch_refusal: str = "submit") -> SimState:
    """The SimState for a node (after scenarios), without the seeded job (see `seed.seed`)."""
    doc = loaded.doc
    project = doc["project"]
    state = SimState(project_id=project["id"], project_number=project["number"],
                     organization=project["organization"], region=doc["region"], zones=list(doc["zones"]),
                     node=doc, scenarios=[sc.name for sc in loaded.scenarios])
    state.options.update({"batch_refusal": batch_refusal, "job_tasks": job_tasks, "faults": [],
                          "latency": {}, "node_file": str(loaded.path)})
    state.options.update(copy.deepcopy(loaded.options))
    number = project["number"]

    state.project = {"name": f"projects/{number}", "parent": project.get("parent") or project["organization"],
                     "projectId": project["id"],
                     "state": "ACTIVE", "displayName": project.get("display_name", project["id"]),
                     "createTime": NODE_CREATED, "updateTime": NODE_CREATED, "etag": f"W/\"{_etag(number)}\""}
    iam = {"version": 1, "etag": iam_etag("iam", number), "bindings": copy.deepcopy(doc["iam_policy"]["bindings"])}
    if doc["iam_policy"].get("auditConfigs"):
        iam["auditConfigs"] = copy.deepcopy(doc["iam_policy"]["auditConfigs"])
    state.iam_policy = iam

    for constraint, policy in doc["org_policies"].items():
        state.org_policies[constraint] = hierarchy.policy_json(f"projects/{number}", constraint, policy,
                                                               _etag("policy", constraint))
    hierarchy.install(state, doc, _etag, iam_etag)

    access_policy = doc["access_policy"]
    state.access_policies[access_policy["name"]] = {"name": access_policy["name"],
                                                    "parent": project["organization"],
                                                    "title": access_policy["title"],
                                                    "etag": _etag(access_policy["name"])[2:].lower()}
    perimeter = doc["perimeter"]
    body: dict[str, Any] = {"name": perimeter["name"], "title": perimeter["title"]}
    if perimeter.get("description"):
        body["description"] = perimeter["description"]
    if perimeter["mode"] == "enforced":
        body["status"] = copy.deepcopy(perimeter["config"])
        if perimeter.get("spec") is not None:
            body["spec"] = copy.deepcopy(perimeter["spec"])
            body["useExplicitDryRunSpec"] = True
    else:
        body["spec"] = copy.deepcopy(perimeter["config"])
        body["useExplicitDryRunSpec"] = True
    body["etag"] = _etag(perimeter["name"])[2:].lower()
    state.perimeters[perimeter["name"]] = body
    for extra in doc.get("extra_perimeters") or ():
        other = {k: copy.deepcopy(v) for k, v in extra.items() if v is not None}
        if other.get("perimeterType") in (None, "PERIMETER_TYPE_REGULAR"):
            other.pop("perimeterType", None)   # REGULAR is the enum default: left out of the JSON
        other.setdefault("etag", _etag(other["name"])[2:].lower())
        state.perimeters[other["name"]] = other
    state.extras["access_levels"] = {level["name"]: copy.deepcopy(dict(level))
                                     for level in doc.get("access_levels") or ()}
    state.extras["groups"] = {group: list(members) for group, members in (doc.get("groups") or {}).items()}

    key_ring = doc["kms"]["key_ring"]
    keys = [(f"{key_ring}/cryptoKeys/{key_id}", key) for key_id, key in doc["kms"]["keys"].items()]
    keys += [(name, {"purpose": "ENCRYPT_DECRYPT"}) for name in doc["kms"].get("other_keys") or ()]
    for name, key in keys:
        algorithm = key.get("algorithm") or ("GOOGLE_SYMMETRIC_ENCRYPTION" if key["purpose"] == "ENCRYPT_DECRYPT"
                                             else "EC_SIGN_P256_SHA256")
        version = {"name": f"{name}/cryptoKeyVersions/1", "state": "ENABLED", "protectionLevel": "SOFTWARE",
                   "algorithm": algorithm, "createTime": NODE_CREATED, "generateTime": NODE_CREATED}
        crypto_key: dict[str, Any] = {"name": name, "purpose": key["purpose"], "createTime": NODE_CREATED,
                                      "versionTemplate": {"protectionLevel": "SOFTWARE", "algorithm": algorithm},
                                      "destroyScheduledDuration": "2592000s"}
        if key["purpose"] == "ENCRYPT_DECRYPT":
            crypto_key["primary"] = version
            crypto_key["rotationPeriod"] = "7776000s"
            crypto_key["nextRotationTime"] = "2027-01-15T09:30:00Z"
        if key.get("keyAccessJustificationsPolicy") is not None:
            # proto3 JSON leaves an empty list out: a policy allowing no reason is answered as {}.
            reasons = list(key["keyAccessJustificationsPolicy"].get("allowedAccessReasons") or [])
            crypto_key["keyAccessJustificationsPolicy"] = {"allowedAccessReasons": reasons} if reasons else {}
        state.crypto_keys[name] = crypto_key
        state.extras.setdefault("kms_versions", {})[version["name"]] = version

    for bucket in doc["buckets"].values():
        state.buckets[bucket["name"]] = bucket_json(bucket, number)
    for bucket in doc.get("extra_buckets") or ():
        state.buckets[bucket["name"]] = bucket_json(bucket, number)
    for key, bindings in (doc.get("bucket_iam") or {}).items():
        name = (doc["buckets"].get(key) or {}).get("name", key)   # a role (raw, processed) or a bucket name
        state.extras.setdefault("storage", {"uploads": {}, "iam": {}, "last_generation": 0})["iam"][name] = {
            "kind": "storage#policy", "resourceId": f"projects/_/buckets/{name}", "version": 1,
            "etag": "CAI=", "bindings": copy.deepcopy(bindings)}
    state.extras["foreign_buckets"] = {b["name"]: dict(b) for b in doc.get("foreign_buckets") or []}
    state.extras["foreign_projects"] = {
        p["id"]: {"number": p["number"], "organization": p.get("organization", ""),
                  "auditConfigs": copy.deepcopy(p.get("auditConfigs") or [])}
        for p in doc.get("foreign_projects") or []}
    log_router.install(state, doc.get("logging") or {}, NODE_CREATED)

    dataset = doc["dataset"]
    state.datasets[dataset["id"]] = dataset_json(dataset, project["id"])
    for extra in doc.get("extra_datasets") or ():
        state.datasets[extra["id"]] = dataset_json(extra, project["id"])
    state.extras["foreign_datasets"] = {
        f"{d['project']}:{d['dataset']}": {
            "kind": "bigquery#dataset", "id": f"{d['project']}:{d['dataset']}",
            "datasetReference": {"projectId": d["project"], "datasetId": d["dataset"]},
            "location": d["location"] if d["location"].upper() in ("US", "EU") else d["location"].lower()}
        for d in doc.get("foreign_datasets") or []}

    template = doc["instance_template"]
    template_url = f"https://www.googleapis.com/compute/v1/projects/{project['id']}/global/instanceTemplates/{template['name']}"
    state.instance_templates[template["name"]] = {
        "kind": "compute#instanceTemplate", "id": numeric_id(template_url), "creationTimestamp": "2026-01-15T01:30:00.000-08:00",
        "name": template["name"], **({"description": template["description"]} if template.get("description") else {}),
        "properties": _with_kinds(copy.deepcopy(template["properties"])), "selfLink": template_url,
    }
    from sovaudit.simulator.api.network import seed_network

    seed_network(state)
    from sovaudit.simulator.api import assured_workloads

    assured_workloads.install(state, doc)
    return state


def _with_kinds(properties: dict[str, Any]) -> dict[str, Any]:
    """Compute marks each disk and interface of a template with its `kind`, as instances.get does."""
    for disk in properties.get("disks") or ():
        disk.setdefault("kind", "compute#attachedDisk")
    for nic in properties.get("networkInterfaces") or ():
        nic.setdefault("kind", "compute#networkInterface")
    return properties


def bucket_json(bucket: Mapping[str, Any], project_number: str) -> dict[str, Any]:
    """A Bucket as storage/v1 returns it; the node file's fields win over the defaults filled in here."""
    name = bucket["name"]
    body: dict[str, Any] = {
        "kind": "storage#bucket", "selfLink": f"https://www.googleapis.com/storage/v1/b/{name}", "id": name,
        "name": name, "projectNumber": project_number, "generation": numeric_id("bucket", name)[:16],
        "metageneration": "1", "timeCreated": NODE_CREATED, "updated": NODE_CREATED,
        "rpo": "DEFAULT", "etag": "CAE=",
        # Google gives every bucket the default 7-day soft-delete window unless it was turned off.
        "softDeletePolicy": {"retentionDurationSeconds": "604800", "effectiveTime": NODE_CREATED},
    }
    body.update(copy.deepcopy(dict(bucket)))
    iam = body.get("iamConfiguration")
    if isinstance(iam, dict) and isinstance(iam.get("uniformBucketLevelAccess"), dict):
        ubla = iam["uniformBucketLevelAccess"]
        if ubla.get("enabled") and "lockedTime" not in ubla:
            ubla["lockedTime"] = "2026-04-15T09:30:00.000Z"
        iam.setdefault("bucketPolicyOnly", dict(ubla))   # Google mirrors UBLA into the legacy field
    return body


def dataset_json(dataset: Mapping[str, Any], project_id: str) -> dict[str, Any]:
    """A Dataset as bigquery/v2 returns it (creation times are epoch milliseconds as strings)."""
    dataset_id = dataset["id"]
    extra = {k: copy.deepcopy(v) for k, v in dataset.items() if k not in {"id", "table"}}
    return {
        "kind": "bigquery#dataset", "etag": _etag("dataset", dataset_id)[2:] + "==",
        "id": f"{project_id}:{dataset_id}",
        "selfLink": f"https://bigquery.googleapis.com/bigquery/v2/projects/{project_id}/datasets/{dataset_id}",
        "datasetReference": {"datasetId": dataset_id, "projectId": project_id},
        "access": [{"role": "OWNER", "specialGroup": "projectOwners"},
                   {"role": "READER", "specialGroup": "projectReaders"},
                   {"role": "WRITER", "specialGroup": "projectWriters"}],
        "creationTime": "1768469400000", "lastModifiedTime": "1768469400000", "type": "DEFAULT",
        **extra,
    }


def load_state(node: str | Path = "us", scenarios: Iterable[str | Path] = (), *, job_tasks: int = 10,
               batch_refusal: str = "submit") -> tuple[SimState, LoadedNode]:
    """Read and validate the node file and scenarios; return the unseeded state and what was loaded."""
    doc, path = load_node_file(node)
    loaded = apply_scenarios(doc, path, [load_scenario(name) for name in scenarios])
    refusal = loaded.options.get("batch_refusal", batch_refusal)
    return build_state(loaded, job_tasks=job_tasks, batch_refusal=refusal), loaded
