"""Policy packs: what a sovereign node promises, loaded from YAML and validated before any audit.

The validator reports every problem in one pass (a reviewer fixing a pack should not play
whack-a-mole), each naming the file, the YAML line and the field, with a hint. Line numbers come
from the composed YAML node tree, so they point at the offending value, not the document.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sovaudit.audit import locations
from sovaudit.policies import schema, staff_access
from sovaudit.policies.schema import Field

SHIPPED = {"us": "us-node.yaml", "eu": "eu-node.yaml"}


class PolicyError(Exception):
    """One problem in a policy pack: `FILE:LINE: FIELD: message (hint)`."""

    def __init__(self, file: str, line: int, field: str, message: str, hint: str = "") -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        # Line 0 means the file has no line to point at (it could not be read at all): no ":0: <document>".
        text = (f"{self.file}: {self.message}" if self.line == 0 and not self.field
                else f"{self.file}:{self.line}: {self.field or '<document>'}: {self.message}")
        return f"{text} ({self.hint})" if self.hint else text


class PolicyPackInvalid(PolicyError):
    """A pack with one or more problems; `errors` holds all of them, `str()` lists them one per line."""

    def __init__(self, errors: list[PolicyError]) -> None:
        self.errors = tuple(errors)
        first = self.errors[0]
        super().__init__(first.file, first.line, first.field, first.message, first.hint)

    def __str__(self) -> str:
        return "\n".join(PolicyError.__str__(e) for e in self.errors)


@dataclass(frozen=True)
class Jurisdiction:
    name: str
    allowed_regions: tuple[str, ...]
    allowed_policy_values: tuple[str, ...]
    probe_regions: tuple[str, ...]


# restricted.googleapis.com, the VIP that only serves VPC-SC-supported APIs (gcp-escape-routes.md §5.3).
RESTRICTED_GOOGLE_APIS = "199.36.153.4/30"


@dataclass(frozen=True)
class NetworkEgress:
    """What SEC-09 demands of the node network's egress firewall.

    `deny-all`: an enabled egress deny of 0.0.0.0/0 for every protocol applies to the workers, and no
    egress allow that beats it opens anything outside `allowed_destinations`. `not-required`: the
    firewall part is skipped (and said so); NATs, proxies and routes are judged all the same.
    Omitted in a pack, it is the strict default, so an older pack does not silently lose the check.
    """

    firewall: str = "deny-all"
    allowed_destinations: tuple[str, ...] = (RESTRICTED_GOOGLE_APIS,)
    # VPC peerings the node network may have (peer networks as projects/P/global/networks/N, exact);
    # any other peering is a path to VMs the audit does not list.
    allowed_peerings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Network:
    network: str
    subnetwork: str
    egress: NetworkEgress = field(default_factory=NetworkEgress)


@dataclass(frozen=True)
class AllowedBridge:
    """A bridge perimeter the node may take part in, and every project it may hold."""

    name: str
    resources: tuple[str, ...]


@dataclass(frozen=True)
class Perimeter:
    """The node's perimeter and the exact allow-lists SEC-01 holds it to (empty: nothing allowed).
    Rules and access levels are Google's REST JSON, matched by content, never by title alone."""

    access_policy: str
    name: str
    restricted_services: tuple[str, ...]
    extra_resources: tuple[str, ...] = ()
    allowed_ingress: tuple[Mapping[str, Any], ...] = ()
    allowed_egress: tuple[Mapping[str, Any], ...] = ()
    allowed_bridges: tuple[AllowedBridge, ...] = ()
    allowed_access_levels: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Buckets:
    input: str
    output: str
    allowed: tuple[str, ...]


@dataclass(frozen=True)
class Access:
    """Who may hold access to the node's data (SOV-04/SOV-05): members of these domains and these
    exact IAM members. Empty means nobody outside the node's own project."""

    allowed_domains: tuple[str, ...] = ()
    allowed_principals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kms:
    location: str
    key_ring: str


# Google's signing keys for Confidential Computing tokens: the `jwks_uri` its OIDC discovery document
# (https://confidentialcomputing.googleapis.com/.well-known/openid-configuration) names. Third-party
# reading [T], not on a Google page: a pack may set `jwks_uri` to what the discovery document says.
DEFAULT_ATTESTATION_JWKS_URI = ("https://www.googleapis.com/service_accounts/v1/metadata/jwk/"
                                "signer@confidentialspace-sign.iam.gserviceaccount.com")
DEFAULT_ATTESTATION_AUDIENCE = "https://sovaudit.dev/attestation"


@dataclass(frozen=True)
class InGuestAttestation:
    """CC-05's switch: whether tasks fetch a Confidential Computing attestation token, and what it binds."""

    enabled: bool = False
    audience: str = DEFAULT_ATTESTATION_AUDIENCE
    jwks_uri: str = DEFAULT_ATTESTATION_JWKS_URI


@dataclass(frozen=True)
class Confidential:
    required_type: str
    machine_series: tuple[str, ...]
    in_guest_attestation: InGuestAttestation = field(default_factory=InGuestAttestation)


@dataclass(frozen=True)
class Pipeline:
    instance_template: str
    machine_type: str
    labels: Mapping[str, str] = field(default_factory=dict)


_LOOKBACK = re.compile(r"^([1-9][0-9]{0,4})([hd])$")
DEFAULT_LOOKBACK = timedelta(hours=24)


def parse_lookback(text: str) -> timedelta | None:
    """`24h` / `7d` as a timedelta; None when the text is not of that form."""
    match = _LOOKBACK.match(text.strip())
    if not match:
        return None
    amount = int(match.group(1))
    return timedelta(hours=amount) if match.group(2) == "h" else timedelta(days=amount)


@dataclass(frozen=True)
class JobScopeRule:
    """Which pipeline jobs a verify without --job judges: every job carrying the pipeline labels whose
    life overlaps [newest job's creation - lookback, now]. A violating job followed by a clean one is
    then judged with it; a pack that wants a longer memory says so (`scope: {lookback: 7d}`)."""

    lookback: timedelta = DEFAULT_LOOKBACK


@dataclass(frozen=True)
class AllowedExclusion:
    """A log exclusion the node is known to have: matched by exact name and exact filter."""

    name: str
    filter: str


@dataclass(frozen=True)
class LogRouting:
    """Where the node's log entries may be stored and which exclusions are expected (SEC-08).

    Without a `logging:` section the log buckets must be in the jurisdiction's allowed regions, no
    exclusion is expected, and `_Required` in `global` is not accepted: it has to be said."""

    allowed_locations: tuple[str, ...]
    required_bucket_location: str = ""
    allowed_exclusions: tuple[AllowedExclusion, ...] = ()


@dataclass(frozen=True)
class Waiver:
    control: str
    resource: str
    owner: str
    justification: str
    expires: date

    def to_json(self) -> dict[str, str]:
        return {"control": self.control, "resource": self.resource, "owner": self.owner,
                "justification": self.justification, "expires": self.expires.isoformat()}


@dataclass(frozen=True)
class PolicyPack:
    api_version: str
    kind: str
    name: str
    description: str
    project: str
    organization: str
    jurisdiction: Jurisdiction
    network: Network
    perimeter: Perimeter
    service_account: str
    buckets: Buckets
    dataset: str
    kms: Kms
    confidential: Confidential
    pipeline: Pipeline
    severity_overrides: Mapping[str, str]
    waivers: tuple[Waiver, ...]
    path: str
    sha256: str
    # SEC-07's exact allow-list of readers; None when the pack names none (SEC-07 is then ERROR).
    readers: tuple[str, ...] | None = None
    access: Access = field(default_factory=Access)
    logging: LogRouting = LogRouting(allowed_locations=())
    scope: JobScopeRule = JobScopeRule()
    # SOV-09: the Assured Workloads workload whose violations the audit reconciles ("" = none named).
    assured_workload: str = ""
    # SOV-07 / SOV-08 (policies/staff_access.py); None when the pack has no such section.
    access_transparency: staff_access.AccessTransparencyRule | None = None
    key_access_justifications: staff_access.KeyAccessRule | None = None

    @property
    def region(self) -> str:
        return self.jurisdiction.allowed_regions[0]

    @cached_property
    def jurisdiction_locations(self) -> frozenset[str]:
        """Every location inside the jurisdiction: the allowed regions, their zones, the allowed groups."""
        members = set(locations.expand(self.jurisdiction.allowed_policy_values))
        for region in self.jurisdiction.allowed_regions:
            members.add(region)
            members.update(locations.zones_of(region))
        return frozenset(members)

    def allows_location(self, location: str) -> bool:
        """Whether a zone/region/multi-region (any Google spelling, any case) lies in the jurisdiction."""
        return locations.normalize(location) in self.jurisdiction_locations


# --------------------------------------------------------------------------------------------
# Loading


def resolve_policy(name_or_path: str | Path) -> PolicyPack:
    """`us`/`eu` (or `us-node`) pick a shipped pack; anything else is a path."""
    text = str(name_or_path)
    short = text.removesuffix("-node")
    if short in SHIPPED and not Path(text).exists():
        shipped = resources.files("sovaudit.policies").joinpath(SHIPPED[short])
        with resources.as_file(shipped) as path:
            return load_policy(path)
    return load_policy(Path(text))


def load_policy(path: str | Path) -> PolicyPack:
    """Load and validate a pack; raises PolicyPackInvalid listing every problem."""
    pack, errors = _load(Path(path))
    if errors or pack is None:
        raise PolicyPackInvalid(errors or [PolicyError(str(path), 0, "", "the pack could not be loaded")])
    return pack


def validate_policy(path: str | Path) -> list[PolicyError]:
    """Every problem of a pack ([] when it is valid)."""
    return _load(Path(path))[1]


def field_lines(path: str | Path) -> dict[str, int]:
    """The YAML line of every field of a pack (`waivers[0].expires` -> 12), for notes that point at a line.

    Goes through the same checker as loading, so paths are spelled as in the errors."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return field_lines_in(text, str(path))


def field_lines_in(text: str, name: str = "policy.yaml") -> dict[str, int]:
    """`field_lines` of a pack's text (a bundle's policy.yaml, read from bytes); {} when it is not YAML."""
    checker = _Checker(name)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if root is None:
        return {}
    checker.document(root)
    return dict(checker.lines)


def _load(path: Path) -> tuple[PolicyPack | None, list[PolicyError]]:
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [PolicyError(file, 0, "", f"cannot read the pack: {exc.strerror or exc}",
                                  "check the path; shipped packs are 'us' and 'eu'")]
    try:
        text = raw.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1 if isinstance(exc.object, bytes) else 1
        return None, [PolicyError(file, line, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                                  "save the file as UTF-8")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [PolicyError(file, line, "", f"YAML syntax error: {problem}",
                                  "check indentation, quotes and colons around this line")]
    checker = _Checker(file)
    values = checker.document(root)
    if values is not None:
        checker.semantics(values)
    if checker.errors or values is None:
        return None, sorted(checker.errors, key=lambda e: e.line)
    return _build(values, file, hashlib.sha256(raw).hexdigest()), []


# --------------------------------------------------------------------------------------------
# Validation

_EMAIL = re.compile(r"^[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+\.[a-z]+$")
_ORG = re.compile(r"^organizations/[0-9]+$")
_MEMBER = re.compile(r"^(serviceAccount|user|group):[A-Za-z0-9][A-Za-z0-9._+-]*@[a-z0-9.-]+\.[a-z]+$")
_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$")
_KEY_RING = re.compile(r"^projects/[^/]+/locations/([^/]+)/keyRings/[^/]+$")
_ACCESS_POLICY = re.compile(r"^accessPolicies/[0-9]+$")
_PROJECT_NUMBER = re.compile(r"^projects/[0-9]+$")
_WORKLOAD = re.compile(r"^(organizations/[0-9]+)/locations/([a-z][a-z0-9-]*)/workloads/([A-Za-z0-9_-]+)$")
_PERIMETER_RESOURCE = re.compile(r"^(projects/[0-9]+|//compute\.googleapis\.com/projects/[^/]+/global/networks/[^/]+)$")
# Project ids: 6-30 characters, lower-case letters, digits and hyphens, starting with a letter, not ending
# with a hyphen; legacy domain-scoped projects carry a `domain:` prefix.
_PROJECT_ID = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def is_project_id(text: str) -> bool:
    """Whether `text` is spelled like a Google Cloud project id (it ends up in API paths and filters)."""
    return bool(_PROJECT_ID.match(text))


def _known_control_ids() -> set[str]:
    # Imported here: the registry imports the controls, which import views and models, which
    # refer to policy packs; a top-level import would be circular.
    from sovaudit.audit import registry

    return {spec.meta.id for spec in registry.all_controls()}


class _Checker:
    """Walks the composed YAML with the schema, collecting every problem with its line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[PolicyError] = []
        self.lines: dict[str, int] = {}
        self.jurisdiction_members: set[str] = set()  # filled by check_jurisdiction, read by check_kms
        self._constructor = yaml.SafeLoader("")

    def error(self, line: int, path: str, message: str, hint: str = "") -> None:
        self.errors.append(PolicyError(self.file, line, path, message, hint))

    def line(self, path: str) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rsplit(".", 1)[0] if "." in path else path.rsplit("[", 1)[0] if "[" in path else ""
        return self.lines.get("", 1)

    def document(self, root: yaml.Node | None) -> dict[str, Any] | None:
        if root is None:
            self.error(1, "", "the file is empty", "start from policies/us-node.yaml")
            return None
        self.lines[""] = root.start_mark.line + 1
        if not isinstance(root, yaml.MappingNode):
            self.error(root.start_mark.line + 1, "", "a policy pack must be a mapping of fields",
                       "start from policies/us-node.yaml")
            return None
        return self.mapping(root, schema.PACK, "")

    def mapping(self, node: yaml.MappingNode, fields: Mapping[str, Field], prefix: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            line = key_node.start_mark.line + 1
            if key in values or path in self.lines:
                self.error(line, path, "field given twice", "keep one of the two")
                continue
            self.lines[path] = value_node.start_mark.line + 1
            spec = fields.get(key)
            if spec is None:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "allowed fields: " + ", ".join(fields)
                self.error(line, path, "unknown field", hint)
                continue
            value = self.value(value_node, spec, path)
            if value is not None:
                values[key] = value
        for key, spec in fields.items():
            if spec.required and key not in values:
                path = f"{prefix}.{key}" if prefix else key
                if path not in self.lines:  # present but invalid was already reported
                    self.error(node.start_mark.line + 1, path, "required field is missing", spec.hint)
        return values

    def scalar(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def value(self, node: yaml.Node, spec: Field, path: str) -> Any:
        line = node.start_mark.line + 1
        if not spec.required and isinstance(node, yaml.ScalarNode) and self.scalar(node) is None:
            return [] if spec.kind in (schema.LIST_STR, schema.LIST_OBJECT, schema.LIST_BODY) else {}  # `waivers:` left empty
        wrong = f"expected a {spec.kind}"
        if spec.kind == schema.STR:
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if isinstance(value, str) and not value.strip():
                self.error(line, path, "must not be empty", spec.hint)
                return None
            if not isinstance(value, str):
                self.error(line, path, f"{wrong}, got {_describe(node, value)}", spec.hint)
                return None
            return value
        if spec.kind == schema.BOOL:
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if not isinstance(value, bool):
                self.error(line, path, f"{wrong}, got {_describe(node, value)}", spec.hint)
                return None
            return value
        if spec.kind == schema.DATE:
            if not isinstance(node, yaml.ScalarNode):
                self.error(line, path, f"{wrong}, got {_describe(node, None)}", spec.hint)
                return None
            try:
                return date.fromisoformat(str(node.value).strip())
            except ValueError:
                self.error(line, path, f"malformed date {node.value!r}", spec.hint)
                return None
        if spec.kind == schema.LIST_BODY:
            if not isinstance(node, yaml.SequenceNode):
                self.error(line, path, f"{wrong}, got {_describe(node, None)}", spec.hint)
                return None
            bodies = []
            for index, item in enumerate(node.value):
                item_path = f"{path}[{index}]"
                self.lines[item_path] = item.start_mark.line + 1
                if not isinstance(item, yaml.MappingNode):
                    self.error(item.start_mark.line + 1, item_path, f"expected a mapping, got "
                               f"{_describe(item, None)}", spec.hint)
                    continue
                bodies.append(self.scalar(item))
            return bodies
        if spec.kind in (schema.LIST_STR, schema.LIST_OBJECT):
            if not isinstance(node, yaml.SequenceNode):
                self.error(line, path, f"{wrong}, got {_describe(node, None)}", spec.hint)
                return None
            items = []
            item_spec = Field(schema.STR, hint=spec.hint) if spec.kind == schema.LIST_STR else \
                Field(schema.OBJECT, fields=spec.fields)
            for index, item in enumerate(node.value):
                item_path = f"{path}[{index}]"
                self.lines[item_path] = item.start_mark.line + 1
                value = self.value(item, item_spec, item_path)
                if value is not None:
                    items.append(value)
            return items
        if spec.kind == schema.MAP_STR:
            if not isinstance(node, yaml.MappingNode):
                self.error(line, path, f"{wrong}, got {_describe(node, None)}", spec.hint)
                return None
            result: dict[str, str] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                entry_path = f"{path}.{key}"
                self.lines[entry_path] = value_node.start_mark.line + 1
                entry = self.value(value_node, Field(schema.STR, hint=spec.hint), entry_path)
                if entry is not None:
                    result[key] = entry
            return result
        if spec.kind == schema.OBJECT:
            if not isinstance(node, yaml.MappingNode):
                self.error(line, path, f"{wrong}, got {_describe(node, None)}",
                           "fields: " + ", ".join(spec.fields))
                return None
            return self.mapping(node, spec.fields, path)
        raise AssertionError(f"schema kind {spec.kind!r} has no checker")

    # ---- meaning, beyond shape --------------------------------------------------------------

    def semantics(self, v: dict[str, Any]) -> None:
        if v.get("apiVersion") not in (None, "sovaudit/v1"):
            self.error(self.line("apiVersion"), "apiVersion", f"unsupported apiVersion {v['apiVersion']!r}",
                       "use sovaudit/v1")
        if v.get("kind") not in (None, "PolicyPack"):
            self.error(self.line("kind"), "kind", f"unsupported kind {v['kind']!r}", "use PolicyPack")
        if "project" in v and not is_project_id(v["project"]):
            self.error(self.line("project"), "project", f"{v['project']!r} is not a project id",
                       "6-30 lower-case letters, digits and hyphens, e.g. fed-node-us")
        if "organization" in v and not _ORG.match(v["organization"]):
            self.error(self.line("organization"), "organization", f"{v['organization']!r} is not an organization name",
                       "organizations/NUMBER")
        if "service_account" in v and not _EMAIL.match(v["service_account"]):
            self.error(self.line("service_account"), "service_account",
                       f"{v['service_account']!r} is not a service account email",
                       "NAME@PROJECT.iam.gserviceaccount.com")
        self.check_jurisdiction(v.get("jurisdiction") or {})
        self.check_buckets(v.get("buckets") or {})
        self.check_perimeter(v.get("perimeter") or {})
        self.check_egress((v.get("network") or {}).get("egress") or {})
        lookback = (v.get("scope") or {}).get("lookback")
        if isinstance(lookback, str) and parse_lookback(lookback) is None:
            self.error(self.line("scope.lookback"), "scope.lookback", f"{lookback!r} is not a lookback",
                       "hours or days, e.g. 24h or 7d")
        self.check_kms(v.get("kms") or {})
        self.check_confidential(v.get("confidential") or {})
        self.check_controls(v.get("severity_overrides") or {}, v.get("waivers") or [])
        self.check_members("readers", v.get("readers") or [])
        self.check_assured_workload(v.get("assured_workload"), v.get("organization"))
        access = v.get("access") or {}
        self.check_members("access.allowed_principals", access.get("allowed_principals") or [])
        for index, domain in enumerate(access.get("allowed_domains") or []):
            if not _DOMAIN.match(str(domain)):
                path = f"access.allowed_domains[{index}]"
                self.error(self.line(path), path, f"{domain!r} is not a domain name", "e.g. example.org")
        self.check_logging(v.get("logging") or {})
        staff_access.check(v, lambda path, message, hint: self.error(self.line(path), path, message, hint))

    def check_members(self, path: str, members: list[Any]) -> None:
        """IAM members in the form Google writes them, so comparisons can be exact."""
        for index, member in enumerate(members):
            item = f"{path}[{index}]"
            if not _MEMBER.match(str(member)):
                self.error(self.line(item), item, f"{member!r} is not an IAM member",
                           "prefix the email with serviceAccount:, user: or group:, e.g. "
                           "serviceAccount:batch-runner@PROJECT.iam.gserviceaccount.com")

    def check_region(self, path: str, region: str) -> bool:
        """A region sovaudit can place (its zones, its location groups); an unknown one fails closed."""
        if not locations.looks_like_region(region):
            self.error(self.line(path), path, f"{region!r} does not look like a region",
                       "regions are spelled like us-central1 or europe-west4; zones and multi-regions are not regions")
            return False
        if region not in locations.REGION_ZONES:
            self.error(self.line(path), path, f"unknown region {region!r}", unknown_region_hint(region))
            return False
        return True

    def check_jurisdiction(self, j: dict[str, Any]) -> None:
        regions = j.get("allowed_regions", [])
        for name in ("allowed_regions", "allowed_policy_values", "probe_regions"):
            if name in j and not j[name]:
                self.error(self.line(f"jurisdiction.{name}"), f"jurisdiction.{name}", "must not be empty",
                           schema.PACK["jurisdiction"].fields[name].hint)
        inside: set[str] = set()
        for index, region in enumerate(regions):
            if self.check_region(f"jurisdiction.allowed_regions[{index}]", region):
                inside.add(region)
                inside.update(locations.zones_of(region))
        allowed = set(regions)
        for index, value in enumerate(j.get("allowed_policy_values", [])):
            path = f"jurisdiction.allowed_policy_values[{index}]"
            try:
                members = locations.expand([value])
            except locations.UnknownLocationGroup:
                self.error(self.line(path), path, f"unknown value group {value!r}",
                           "use in:<region>-locations or a group listed in sovaudit.audit.locations")
                continue
            inside |= members
            value_regions = sorted(m for m in members if m in locations.REGION_ZONES)
            if allowed and value_regions and not allowed.intersection(value_regions):
                # A value group sharing no region with allowed_regions describes another jurisdiction:
                # SOV-01 would accept an org policy that lets data leave the node's region.
                self.error(self.line(path), path,
                           f"{value!r} allows {', '.join(value_regions)}, none of which is in allowed_regions "
                           f"({', '.join(regions)}): the jurisdiction contradicts itself",
                           "remove the value, or add its region to allowed_regions if the node really spans it")
        self.jurisdiction_members = inside
        for index, region in enumerate(j.get("probe_regions", [])):
            path = f"jurisdiction.probe_regions[{index}]"
            if self.check_region(path, region) and region in inside:
                self.error(self.line(path), path,
                           f"probe region {region!r} is inside the allowed jurisdiction: the probe would "
                           "expect a refusal the policy itself permits",
                           "probe a region outside allowed_regions/allowed_policy_values")

    def check_buckets(self, b: dict[str, Any]) -> None:
        allowed = b.get("allowed")
        if allowed is None:
            return
        for role in ("input", "output"):
            if role in b and b[role] not in allowed:
                self.error(self.line("buckets.allowed"), "buckets.allowed",
                           f"the {role} bucket {b[role]!r} is not in the allow-list",
                           f"add {b[role]} to buckets.allowed")

    def check_perimeter(self, p: dict[str, Any]) -> None:
        policy = p.get("access_policy")
        if policy and not _ACCESS_POLICY.match(policy):
            self.error(self.line("perimeter.access_policy"), "perimeter.access_policy",
                       f"{policy!r} is not an access policy name", "accessPolicies/NUMBER")
        name = p.get("name")
        if policy and name and not name.startswith(f"{policy}/servicePerimeters/"):
            self.error(self.line("perimeter.name"), "perimeter.name",
                       f"{name!r} is not a perimeter of {policy}", f"{policy}/servicePerimeters/NAME")
        if "restricted_services" in p and not p["restricted_services"]:
            # SEC-01 would then demand nothing of the perimeter's protection: an empty check is no check.
            self.error(self.line("perimeter.restricted_services"), "perimeter.restricted_services", "must not be empty",
                       "list the services the pipeline uses, e.g. [storage.googleapis.com, bigquery.googleapis.com]")
        for index, resource in enumerate(p.get("extra_resources") or []):
            path = f"perimeter.extra_resources[{index}]"
            if not _PERIMETER_RESOURCE.match(resource):
                self.error(self.line(path), path, f"{resource!r} is not a perimeter resource",
                           "projects/NUMBER or //compute.googleapis.com/projects/PROJECT/global/networks/NAME")
        for key, sides in (("allowed_ingress", ("ingressFrom", "ingressTo")),
                           ("allowed_egress", ("egressFrom", "egressTo"))):
            for index, rule in enumerate(p.get(key) or []):
                path = f"perimeter.{key}[{index}]"
                unknown = sorted(set(rule) - {"title", *sides})
                if unknown:
                    self.error(self.line(path), path, f"unknown field(s) {', '.join(unknown)} in a rule",
                               f"a rule has title, {sides[0]} and {sides[1]}")
                missing = [side for side in sides if not isinstance(rule.get(side), dict)]
                if missing:
                    self.error(self.line(path), path, f"{' and '.join(missing)} missing: list the full rule body",
                               "copy the rule as `gcloud access-context-manager perimeters describe` shows it")
        for index, bridge in enumerate(p.get("allowed_bridges") or []):
            path = f"perimeter.allowed_bridges[{index}]"
            if policy and not str(bridge.get("name", "")).startswith(f"{policy}/servicePerimeters/"):
                self.error(self.line(f"{path}.name"), f"{path}.name", f"{bridge.get('name')!r} is not a perimeter "
                           f"of {policy}", f"{policy}/servicePerimeters/NAME")
            for r_index, resource in enumerate(bridge.get("resources") or []):
                if not _PROJECT_NUMBER.match(resource):
                    r_path = f"{path}.resources[{r_index}]"
                    self.error(self.line(r_path), r_path, f"{resource!r} is not projects/NUMBER",
                               "bridges hold projects only")
        for index, level in enumerate(p.get("allowed_access_levels") or []):
            path = f"perimeter.allowed_access_levels[{index}]"
            if not (policy and str(level.get("name", "")).startswith(f"{policy}/accessLevels/")):
                self.error(self.line(path), path, f"access level name {level.get('name')!r} is not a level of "
                           f"{policy}", f"{policy}/accessLevels/NAME, with its full basic conditions")

    def check_egress(self, e: dict[str, Any]) -> None:
        mode = e.get("firewall")
        if mode is not None and mode not in schema.EGRESS_FIREWALL_MODES:
            self.error(self.line("network.egress.firewall"), "network.egress.firewall",
                       f"unknown egress firewall requirement {mode!r}", "one of " + ", ".join(schema.EGRESS_FIREWALL_MODES))
        for index, text in enumerate(e.get("allowed_destinations", [])):
            path = f"network.egress.allowed_destinations[{index}]"
            try:
                cidr = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                self.error(self.line(path), path, f"{text!r} is not a CIDR range", "e.g. 199.36.153.4/30")
                continue
            if cidr.prefixlen == 0:
                self.error(self.line(path), path, f"{text!r} is the whole address space: it would let every egress "
                           "allow pass", "list only Google's restricted/private VIPs or your own ranges")
        for index, text in enumerate(e.get("allowed_peerings", [])):
            path = f"network.egress.allowed_peerings[{index}]"
            if not re.fullmatch(r"projects/[^/]+/global/networks/[^/]+", text.strip()):
                self.error(self.line(path), path, f"{text!r} is not a network name", "projects/P/global/networks/N")

    def check_kms(self, k: dict[str, Any]) -> None:
        location = k.get("location")
        if location is not None and location not in locations.REGION_ZONES and location not in locations.MULTI_REGIONS:
            self.error(self.line("kms.location"), "kms.location", f"unknown KMS location {location!r}",
                       "a region such as us-central1 or a multi-region such as us/europe")
        elif location is not None and self.jurisdiction_members and location not in self.jurisdiction_members:
            self.error(self.line("kms.location"), "kms.location",
                       f"the key ring location {location!r} is outside the jurisdiction "
                       f"({', '.join(sorted(r for r in self.jurisdiction_members if r in locations.REGION_ZONES))})",
                       "keep the CMEK keys in an allowed region: keys must live where the data lives")
        ring = k.get("key_ring")
        if ring is not None:
            match = _KEY_RING.match(ring)
            if not match:
                self.error(self.line("kms.key_ring"), "kms.key_ring", f"{ring!r} is not a key ring name",
                           schema.PACK["kms"].fields["key_ring"].hint)
            elif location and match.group(1) != location:
                self.error(self.line("kms.key_ring"), "kms.key_ring",
                           f"the key ring is in {match.group(1)!r}, not in kms.location {location!r}",
                           "keys must live where the data lives")

    def check_confidential(self, c: dict[str, Any]) -> None:
        required = c.get("required_type")
        if required is not None and required not in schema.CONFIDENTIAL_TYPES:
            self.error(self.line("confidential.required_type"), "confidential.required_type",
                       f"unknown confidential type {required!r}", "one of " + ", ".join(schema.CONFIDENTIAL_TYPES))
        if "machine_series" in c and not c["machine_series"]:
            self.error(self.line("confidential.machine_series"), "confidential.machine_series",
                       "must not be empty", "e.g. [n2d, c2d, c3d]")
        attestation = c.get("in_guest_attestation") or {}
        jwks_uri = attestation.get("jwks_uri")
        if isinstance(jwks_uri, str) and not jwks_uri.startswith("https://"):
            self.error(self.line("confidential.in_guest_attestation.jwks_uri"),
                       "confidential.in_guest_attestation.jwks_uri", "must be an https:// URL",
                       "the jwks_uri of https://confidentialcomputing.googleapis.com/.well-known/openid-configuration")

    def check_logging(self, log: dict[str, Any]) -> None:
        if "allowed_locations" in log and not log["allowed_locations"]:
            self.error(self.line("logging.allowed_locations"), "logging.allowed_locations", "must not be empty",
                       "e.g. [us-central1]: the regional log bucket _Default is routed to")
        for index, location in enumerate(log.get("allowed_locations", [])):
            path = f"logging.allowed_locations[{index}]"
            if location == "global":
                continue   # said explicitly: Google does not say where `global` entries are stored
            if location not in locations.REGION_ZONES and location not in locations.MULTI_REGIONS:
                self.error(self.line(path), path, f"unknown log bucket location {location!r}",
                           "a region such as us-central1, a multi-region such as us/eu, or global")
            elif self.jurisdiction_members and location not in self.jurisdiction_members:
                self.error(self.line(path), path, f"the log location {location!r} is outside the jurisdiction",
                           "log entries describe the data; keep them where the data lives")
        required = log.get("required_bucket_location")
        if required is not None and required != "global":
            self.error(self.line("logging.required_bucket_location"), "logging.required_bucket_location",
                       f"unsupported value {required!r}",
                       "only global (the location _Required keeps on an existing project) can be accepted here; "
                       "a regional _Required must be in allowed_locations")
        seen: set[str] = set()
        for index, exclusion in enumerate(log.get("allowed_exclusions", [])):
            name = exclusion.get("name")
            if name in seen:
                path = f"logging.allowed_exclusions[{index}].name"
                self.error(self.line(path), path, f"exclusion {name!r} is listed twice", "keep one entry per name")
            seen.add(name)

    def check_assured_workload(self, name: str | None, organization: str | None) -> None:
        if name is None:
            return
        hint = schema.PACK["assured_workload"].hint
        match = _WORKLOAD.match(name)
        if not match:
            self.error(self.line("assured_workload"), "assured_workload", f"{name!r} is not a workload name", hint)
        elif match.group(3) == "-":
            # `-` reads every workload of the location (AIP-159): the pack must name the one that governs the node.
            self.error(self.line("assured_workload"), "assured_workload",
                       "'-' stands for every workload; name the one workload that governs the node", hint)
        elif organization and _ORG.match(organization) and match.group(1) != organization:
            self.error(self.line("assured_workload"), "assured_workload",
                       f"the workload belongs to {match.group(1)}, not to the pack's organization {organization}",
                       "a workload lives in the node's own organization")

    def check_controls(self, overrides: dict[str, str], waivers: list[dict[str, Any]]) -> None:
        known = _known_control_ids()
        hint = "see `sovaudit controls list`"
        for control_id, severity in overrides.items():
            path = f"severity_overrides.{control_id}"
            if control_id not in known:
                self.error(self.line(path), path, f"unknown control id {control_id!r}", hint)
            if severity not in schema.SEVERITIES:
                self.error(self.line(path), path, f"unknown severity {severity!r}",
                           "one of " + ", ".join(schema.SEVERITIES))
        for index, waiver in enumerate(waivers):
            waived = waiver.get("control")
            if waived is not None and waived not in known:
                path = f"waivers[{index}].control"
                self.error(self.line(path), path, f"unknown control id {waived!r}", hint)


def _egress(e: dict[str, Any] | None) -> NetworkEgress:
    if not e:
        return NetworkEgress()
    return NetworkEgress(e["firewall"], tuple(e.get("allowed_destinations", NetworkEgress.allowed_destinations)),
                         tuple(e.get("allowed_peerings", ())))


def _describe(node: yaml.Node, value: Any) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if value is None:
        return "nothing" if getattr(node, "value", "") in ("", "~", "null") else repr(getattr(node, "value", ""))
    return f"{type(value).__name__} {value!r}"


def _build(v: dict[str, Any], file: str, sha256: str) -> PolicyPack:
    j, n, p, b, k, c, pl = (v[name] for name in
                            ("jurisdiction", "network", "perimeter", "buckets", "kms", "confidential", "pipeline"))
    return PolicyPack(
        api_version=v["apiVersion"], kind=v["kind"], name=v["name"], description=v.get("description", ""),
        project=v["project"], organization=v["organization"],
        jurisdiction=Jurisdiction(j["name"], tuple(j["allowed_regions"]), tuple(j["allowed_policy_values"]),
                                  tuple(j["probe_regions"])),
        network=Network(n["network"], n["subnetwork"], _egress(n.get("egress"))),
        perimeter=Perimeter(p["access_policy"], p["name"], tuple(p["restricted_services"]),
                            extra_resources=tuple(p.get("extra_resources") or ()),
                            allowed_ingress=tuple(p.get("allowed_ingress") or ()),
                            allowed_egress=tuple(p.get("allowed_egress") or ()),
                            allowed_bridges=tuple(AllowedBridge(b["name"], tuple(b["resources"]))
                                                  for b in p.get("allowed_bridges") or ()),
                            allowed_access_levels=tuple(p.get("allowed_access_levels") or ())),
        service_account=v["service_account"],
        buckets=Buckets(b["input"], b["output"], tuple(b["allowed"])),
        dataset=v["dataset"],
        kms=Kms(k["location"], k["key_ring"]),
        confidential=Confidential(c["required_type"], tuple(s.lower() for s in c["machine_series"]),
                                  _attestation(c.get("in_guest_attestation") or {})),
        pipeline=Pipeline(pl["instance_template"], pl["machine_type"], dict(pl.get("labels", {}))),
        severity_overrides=dict(v.get("severity_overrides", {})),
        waivers=tuple(Waiver(w["control"], w["resource"], w["owner"], w["justification"], w["expires"])
                      for w in v.get("waivers", [])),
        path=file, sha256=sha256,
        readers=tuple(v["readers"]) if "readers" in v else None,
        access=Access(tuple((v.get("access") or {}).get("allowed_domains") or ()),
                      tuple((v.get("access") or {}).get("allowed_principals") or ())),
        logging=_log_routing(v.get("logging") or {}, tuple(j["allowed_regions"])),
        scope=JobScopeRule(parse_lookback(str((v.get("scope") or {}).get("lookback") or "")) or DEFAULT_LOOKBACK),
        assured_workload=str(v.get("assured_workload") or ""),
        access_transparency=staff_access.access_transparency_rule(v),
        key_access_justifications=staff_access.key_access_rule(v),
    )


def _attestation(a: dict[str, Any]) -> InGuestAttestation:
    return InGuestAttestation(enabled=bool(a.get("enabled", False)),
                              audience=str(a.get("audience") or DEFAULT_ATTESTATION_AUDIENCE),
                              jwks_uri=str(a.get("jwks_uri") or DEFAULT_ATTESTATION_JWKS_URI))


def _log_routing(log: dict[str, Any], allowed_regions: tuple[str, ...]) -> LogRouting:
    return LogRouting(
        allowed_locations=tuple(log.get("allowed_locations") or allowed_regions),
        required_bucket_location=str(log.get("required_bucket_location") or ""),
        allowed_exclusions=tuple(AllowedExclusion(e["name"], e["filter"].strip())
                                 for e in log.get("allowed_exclusions") or ()),
    )


def unknown_region_hint(region: str) -> str:
    """What a user can do about a region sovaudit does not know: fix a typo (the nearest known names),
    or, for a region Google opened after this release, upgrade. Never "edit the package": a pack cannot
    teach sovaudit a region's zones, and guessing them would let a VM in an unknown zone pass."""
    import difflib

    near = difflib.get_close_matches(region, sorted(locations.REGION_ZONES), n=3, cutoff=0.6)
    known = near or sorted(r for r in locations.REGION_ZONES if r.split("-")[0] == region.split("-")[0])[:6]
    listed = f"did you mean {' or '.join(known)}? " if near else (f"known regions like it: {', '.join(known)}; "
                                                                  if known else "")
    return (f"{listed}`sovaudit policy regions` lists every region this release knows; a region Google opened "
            "since needs a newer sovaudit (pip install -U sovaudit)")
