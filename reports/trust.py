"""The trust policy a regulator keeps: which signers, TSAs, ages and targets it accepts.

`report verify ENVELOPE --trust FILE` proves the bundle is intact (signatures, subjects) and then
applies this file rule by rule. The file is YAML, validated strictly: every problem names the file,
the line and the field, like policy packs do. Shape:

    schema: sovaudit/trust-policy/v1
    signers:                       # at least one
      - name: ops-2026
        public_key: ops-2026.pub.pem          # PEM, relative to this file; or keyid: <64 hex>
        kms_key_version: projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1  # label
        valid_from: 2026-01-01T00:00:00Z
        valid_until: 2027-01-01T00:00:00Z     # optional: a retired key
    tsas:                          # optional: TSA roots whose timestamps are trusted
      - name: qualified-tsa
        root: tsa-root.pem
        policy_oid: 1.2.3.4.1                 # optional
    max_age: 30d                   # optional: Nd or Nh
    allow_simulated: false         # default false
    project: my-project            # optional: the statement must be about this project
    policy: us-node                # optional: the policy pack (it fixes the jurisdiction)

A key's validity window is judged at the *trusted* time (the RFC 3161 genTime) when there is one;
without one, a key whose window has closed FAILs: nothing proves the bundle was signed before.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509

SCHEMA = "sovaudit/trust-policy/v1"
_KEYID = re.compile(r"^[0-9a-f]{64}$")
_KMS_VERSION = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/cryptoKeyVersions/[0-9]+$")
_AGE = re.compile(r"^([1-9][0-9]{0,5})([dh])$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_TOP = {"schema", "signers", "tsas", "max_age", "allow_simulated", "project", "policy"}
_SIGNER = {"name", "public_key", "keyid", "kms_key_version", "valid_from", "valid_until"}
_TSA = {"name", "root", "policy_oid"}


class TrustPolicyError(Exception):
    """The trust file is unusable; `problems` holds every 'file:line: field: message'."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class TrustedSigner:
    name: str
    keyid: str
    public_key_path: Path | None
    kms_key_version: str
    valid_from: datetime
    valid_until: datetime | None


@dataclass(frozen=True)
class TrustedTsa:
    name: str
    roots: tuple[x509.Certificate, ...]
    policy_oid: str


@dataclass(frozen=True)
class TrustPolicy:
    path: Path
    signers: tuple[TrustedSigner, ...]
    tsas: tuple[TrustedTsa, ...]
    max_age: timedelta | None
    allow_simulated: bool
    project: str
    policy: str


@dataclass(frozen=True)
class RuleOutcome:
    """One rule of the trust policy applied to one bundle."""

    rule: str
    ok: bool
    reason: str


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def error(self, node: yaml.Node, field: str, message: str) -> None:
        self.problems.append(f"{self.path}:{node.start_mark.line + 1}: {field or '<document>'}: {message}")

    def mapping(self, node: yaml.Node, field: str, allowed: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, field, "expected a mapping of fields")
            return {}
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            name = f"{field}.{key}" if field else key
            if key not in allowed:
                self.error(key_node, name, f"unknown field; allowed: {', '.join(sorted(allowed))}")
            elif key in out:
                self.error(key_node, name, "field given twice")
            else:
                out[key] = value_node
        return out

    def text(self, node: yaml.Node, field: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str" or not str(node.value).strip():
            self.error(node, field, "expected a non-empty string")
            return ""
        return str(node.value)

    def when(self, node: yaml.Node, field: str) -> datetime | None:
        raw = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            self.error(node, field, f"expected an ISO 8601 time with a zone, e.g. 2026-01-01T00:00:00Z; got {raw!r}")
            return None
        if value.tzinfo is None:
            self.error(node, field, "the time has no zone; add Z or +00:00")
            return None
        return value


def load_trust_policy(path: Path) -> TrustPolicy:
    """Parse and validate a trust policy; raise TrustPolicyError listing every problem with its line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise TrustPolicyError([f"{path}:0: <document>: cannot read the trust policy: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise TrustPolicyError([f"{path}:1: <document>: not UTF-8 text: {exc.reason}"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise TrustPolicyError([f"{path}:{line}: <document>: YAML syntax error: {getattr(exc, 'problem', exc)}"]) from exc
    reader = _Reader(path)
    if root is None:
        raise TrustPolicyError([f"{path}:1: <document>: the file is empty"])
    top = reader.mapping(root, "", _TOP)
    if reader.problems and not top:
        raise TrustPolicyError(reader.problems)
    if "schema" not in top:
        reader.error(root, "schema", f"required field is missing; write schema: {SCHEMA}")
    elif reader.text(top["schema"], "schema") not in ("", SCHEMA):
        reader.error(top["schema"], "schema", f"unknown schema; expected {SCHEMA}")
    signers = _signers(reader, root, top.get("signers"), path.parent)
    tsas = _tsas(reader, top.get("tsas"), path.parent)
    max_age = None
    if "max_age" in top:
        node = top["max_age"]
        match = _AGE.match(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
        if match is None:
            reader.error(node, "max_age", "expected a number of days or hours, e.g. 30d or 12h")
        else:
            amount = int(match.group(1))
            max_age = timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
    allow_simulated = False
    if "allow_simulated" in top:
        node = top["allow_simulated"]
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            reader.error(node, "allow_simulated", "expected true or false")
        else:
            allow_simulated = str(node.value).lower() == "true"
    project = reader.text(top["project"], "project") if "project" in top else ""
    policy = reader.text(top["policy"], "policy") if "policy" in top else ""
    if reader.problems:
        raise TrustPolicyError(reader.problems)
    return TrustPolicy(path, tuple(signers), tuple(tsas), max_age, allow_simulated, project, policy)


def _signers(reader: _Reader, root: yaml.Node, node: yaml.Node | None, base: Path) -> list[TrustedSigner]:
    from sovaudit.reports.keys import KeyFileError, load_public_key

    if node is None:
        reader.error(root, "signers", "required field is missing; list at least one trusted signing key")
        return []
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        reader.error(node, "signers", "expected a non-empty list of signing keys")
        return []
    out = []
    for index, item in enumerate(node.value):
        field = f"signers[{index}]"
        fields = reader.mapping(item, field, _SIGNER)
        if not fields and not isinstance(item, yaml.MappingNode):
            continue
        name = reader.text(fields["name"], f"{field}.name") if "name" in fields else ""
        if "name" not in fields:
            reader.error(item, f"{field}.name", "required field is missing")
        keyid, key_path = "", None
        if ("public_key" in fields) == ("keyid" in fields):
            reader.error(item, f"{field}.public_key", "give exactly one of public_key (a PEM file) or keyid")
        elif "public_key" in fields:
            raw = reader.text(fields["public_key"], f"{field}.public_key")
            if raw:
                key_path = (base / raw) if not Path(raw).is_absolute() else Path(raw)
                try:
                    keyid = load_public_key(key_path).keyid
                except KeyFileError as exc:
                    reader.error(fields["public_key"], f"{field}.public_key", str(exc))
        else:
            keyid = reader.text(fields["keyid"], f"{field}.keyid")
            if keyid and not _KEYID.match(keyid):
                reader.error(fields["keyid"], f"{field}.keyid", "expected 64 lower-case hex digits (sovaudit keys id)")
        kms = ""
        if "kms_key_version" in fields:
            kms = reader.text(fields["kms_key_version"], f"{field}.kms_key_version")
            if kms and not _KMS_VERSION.match(kms):
                reader.error(fields["kms_key_version"], f"{field}.kms_key_version",
                             "expected projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N")
        valid_from = reader.when(fields["valid_from"], f"{field}.valid_from") if "valid_from" in fields else None
        if "valid_from" not in fields:
            reader.error(item, f"{field}.valid_from", "required field is missing: when the key began to sign")
        valid_until = reader.when(fields["valid_until"], f"{field}.valid_until") if "valid_until" in fields else None
        if valid_from and valid_until and valid_until <= valid_from:
            reader.error(fields["valid_until"], f"{field}.valid_until", "must be after valid_from")
        if valid_from is not None:
            out.append(TrustedSigner(name, keyid, key_path, kms, valid_from, valid_until))
    return out


def _tsas(reader: _Reader, node: yaml.Node | None, base: Path) -> list[TrustedTsa]:
    from sovaudit.reports.timestamp import TimestampError, load_roots

    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        reader.error(node, "tsas", "expected a list of timestamp authorities")
        return []
    out = []
    for index, item in enumerate(node.value):
        field = f"tsas[{index}]"
        fields = reader.mapping(item, field, _TSA)
        name = reader.text(fields["name"], f"{field}.name") if "name" in fields else ""
        roots: list[x509.Certificate] = []
        if "root" not in fields:
            reader.error(item, f"{field}.root", "required field is missing: the TSA's root certificate (PEM)")
        else:
            raw = reader.text(fields["root"], f"{field}.root")
            if raw:
                try:
                    roots = load_roots([str(base / raw)])
                except TimestampError as exc:
                    reader.error(fields["root"], f"{field}.root", str(exc))
        oid = ""
        if "policy_oid" in fields:
            oid = reader.text(fields["policy_oid"], f"{field}.policy_oid")
            if oid and not _OID.match(oid):
                reader.error(fields["policy_oid"], f"{field}.policy_oid", "expected a dotted OID such as 1.2.3.4.1")
        out.append(TrustedTsa(name, tuple(roots), oid))
    return out


def is_simulated(statement: Mapping[str, Any]) -> bool:
    """Whether a statement is about a simulated run. Two readings, both honoured: an explicit
    `simulated: true` (in the predicate or its sovaudit extension, added by another change), or a
    target URL on a loopback address (the simulator only ever listens there)."""
    raw_predicate = statement.get("predicate")
    predicate: Mapping[str, Any] = raw_predicate if isinstance(raw_predicate, Mapping) else {}
    raw_extension = predicate.get("sovaudit")
    extension: Mapping[str, Any] = raw_extension if isinstance(raw_extension, Mapping) else {}
    if predicate.get("simulated") is True or extension.get("simulated") is True:
        return True
    target = extension.get("target")
    if not isinstance(target, str):
        return False
    host = urlsplit(target).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _signed_at(statement: Mapping[str, Any]) -> datetime | None:
    extension = (statement.get("predicate") or {}).get("sovaudit") or {}
    raw = extension.get("finishedAt") if isinstance(extension, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def apply_trust(policy: TrustPolicy, statement: Mapping[str, Any], signer_keyids: Sequence[str],
                trusted_time: datetime | None, now: datetime | None = None) -> list[RuleOutcome]:
    """Every rule of `policy` for one verified statement. `trusted_time` is the verified RFC 3161
    genTime (None when the bundle has none or it did not verify)."""
    now = now or datetime.now(UTC)
    outcomes: list[RuleOutcome] = []
    by_keyid = {s.keyid: s for s in policy.signers}
    if not signer_keyids:
        outcomes.append(RuleOutcome("signer", False, "the envelope carries no signature"))
    for keyid in signer_keyids:
        signer = by_keyid.get(keyid)
        if signer is None:
            outcomes.append(RuleOutcome("signer", False, f"key {keyid or '(no keyid)'} is not a trusted signer"))
            continue
        outcomes.append(RuleOutcome("signer", True, f"key {keyid} is trusted signer {signer.name!r}"))
        outcomes.append(_validity(signer, trusted_time, _signed_at(statement), now))
    if policy.max_age is not None:
        basis, when = ("trusted time", trusted_time) if trusted_time else ("signing time (the signer's claim)",
                                                                           _signed_at(statement))
        if when is None:
            outcomes.append(RuleOutcome("max_age", False, "the bundle states no time; its age is unknown"))
        else:
            age = now - when
            ok = timedelta(0) - timedelta(minutes=5) <= age <= policy.max_age
            outcomes.append(RuleOutcome("max_age", ok, f"{_days(age)} old by {basis} {when.isoformat()}; "
                                                       f"at most {_days(policy.max_age)} accepted"))
    simulated = is_simulated(statement)
    if simulated and not policy.allow_simulated:
        outcomes.append(RuleOutcome("simulated", False, "the run is against a simulator (loopback target or "
                                                        "simulated: true); this policy does not accept simulated runs"))
    else:
        outcomes.append(RuleOutcome("simulated", True, "simulated run, accepted by allow_simulated" if simulated
                                    else "a run against a real target"))
    extension = (statement.get("predicate") or {}).get("sovaudit") or {}
    if policy.project:
        got = extension.get("project") if isinstance(extension, Mapping) else None
        outcomes.append(RuleOutcome("project", got == policy.project,
                                    f"project is {got!r}; required {policy.project!r}"))
    if policy.policy:
        pack = (extension.get("policy") or {}).get("name") if isinstance(extension, Mapping) else None
        outcomes.append(RuleOutcome("policy", pack == policy.policy,
                                    f"policy pack (jurisdiction) is {pack!r}; required {policy.policy!r}"))
    return outcomes


def _validity(signer: TrustedSigner, trusted_time: datetime | None, claimed: datetime | None,
              now: datetime) -> RuleOutcome:
    window = f"{signer.valid_from.isoformat()} .. {signer.valid_until.isoformat() if signer.valid_until else 'open'}"
    if trusted_time is not None:
        inside = signer.valid_from <= trusted_time and (signer.valid_until is None or trusted_time <= signer.valid_until)
        verb = "was" if inside else "was NOT"
        return RuleOutcome("key validity", inside,
                           f"key {signer.name!r} {verb} valid at the trusted time {trusted_time.isoformat()} ({window})")
    if signer.valid_until is not None and now > signer.valid_until:
        return RuleOutcome("key validity", False, f"key {signer.name!r} was retired at {signer.valid_until.isoformat()} "
                           "and the bundle has no trusted time to prove when it was signed")
    if claimed is not None and claimed < signer.valid_from:
        return RuleOutcome("key validity", False, f"the bundle claims {claimed.isoformat()}, before key "
                           f"{signer.name!r} was valid ({window})")
    return RuleOutcome("key validity", True, f"key {signer.name!r} is valid now ({window}); no trusted time, "
                       "so this rests on the key not being retired")


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if abs(hours) >= 48 else f"{hours:.1f} hours"
