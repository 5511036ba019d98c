"""Does the simulator answer in Google's published shapes? A check over a recorded evidence bundle.

Every evidence item of a `verify --out` bundle is the raw REST JSON the simulator sent. Each is
matched to its discovery method (google-api-python-client ships Google's discovery documents) by
HTTP method and URL path, and its body validated against the method's response schema: no field the
schema does not know, JSON types as discovery encodes them (int64 as a string of digits), enum
values. Error answers must be Google's envelope. Audit entries in `entries.list` answers are parsed
into the AuditLog proto (google-cloud-audit-log), and BigQuery's metadata into
BigQueryAuditMetadata, rejecting unknown fields and bad enum names. Shielded VM integrity entries
(jsonPayload IntegrityEvent, no published proto) are held to the documented example's fields.

The project's own tests use this, so they never depend on tooling outside the checkout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DOCUMENTS = {
    "batch": "batch.v1", "compute": "compute.v1", "logging": "logging.v2", "storage": "storage.v1",
    "bigquery": "bigquery.v2", "accesscontextmanager": "accesscontextmanager.v1",
    "resourcemanager": "cloudresourcemanager.v3", "orgpolicy": "orgpolicy.v2", "kms": "cloudkms.v1",
    "assuredworkloads": "assuredworkloads.v1",
}
# APIs whose errors carry the legacy `errors[]` list; the others must name a google.rpc status.
CLASSIC_ERRORS = {"storage", "compute", "bigquery"}
_INT64 = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Defect:
    item: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.item} {self.path}: {self.problem}"


@dataclass(frozen=True)
class _Method:
    http_method: str
    pattern: re.Pattern[str]
    response: str | None
    # flatPath templates name every segment; `{+name}` paths match greedily. Prefer the most literal.
    specificity: tuple[int, int]


@cache
def _document(name: str) -> dict[str, Any]:
    import googleapiclient

    folder = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def _walk_methods(resource: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from (resource.get("methods") or {}).values()
    for child in (resource.get("resources") or {}).values():
        yield from _walk_methods(child)


def _template_regex(template: str) -> str:
    out, position = "", 0
    for match in re.finditer(r"\{(\+?)([^}]+)\}", template):
        out += re.escape(template[position:match.start()])
        out += ".+" if match.group(1) else "[^/]+"
        position = match.end()
    return out + re.escape(template[position:])


@cache
def _methods(service: str) -> tuple[_Method, ...]:
    doc = _document(DOCUMENTS[service])
    prefix = "/" + doc.get("servicePath", "").strip("/")
    prefix = "" if prefix == "/" else prefix
    found = []
    for method in _walk_methods(doc):
        for key in ("flatPath", "path"):
            template = method.get(key)
            if template:
                regex = re.compile(f"{re.escape(prefix)}/{_template_regex(template)}")
                literal = len(re.sub(r"\{[^}]+\}", "", template))
                found.append(_Method(method["httpMethod"], regex, (method.get("response") or {}).get("$ref"),
                                     (1 if key == "flatPath" else 0, literal)))
    return tuple(found)


def _match(service: str, http_method: str, path: str) -> _Method | None:
    matches = [m for m in _methods(service) if m.http_method == http_method and m.pattern.fullmatch(path)]
    return max(matches, key=lambda m: m.specificity, default=None)


class _Validator:
    def __init__(self, service: str, item: str, *, int_enums: bool = False) -> None:
        self.schemas = _document(DOCUMENTS[service])["schemas"]
        self.item = item
        # The GAPIC REST clients ask for `$alt=json;enum-encoding=int`: enums then travel as numbers.
        self.int_enums = int_enums
        self.defects: list[Defect] = []

    def fail(self, path: str, problem: str) -> None:
        self.defects.append(Defect(self.item, path, problem))

    def value(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        if "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            self.object(value, schema, path)
        elif kind == "array":
            if not isinstance(value, list):
                self.fail(path, f"expected an array, got {type(value).__name__}")
                return
            for index, element in enumerate(value):
                self.value(element, schema.get("items") or {}, f"{path}[{index}]")
        elif kind == "string":
            if schema.get("enum") and self.int_enums and isinstance(value, int) and not isinstance(value, bool):
                if not 0 <= value < len(schema["enum"]):
                    self.fail(path, f"enum number {value} is outside 0..{len(schema['enum']) - 1}")
            elif schema.get("format") in {"int64", "uint64"}:
                if not (isinstance(value, str) and _INT64.fullmatch(value)):
                    self.fail(path, f"int64 must be a string of digits, got {value!r}")
            elif not isinstance(value, str):
                self.fail(path, f"expected a string, got {value!r}")
            elif schema.get("enum") and value not in schema["enum"]:
                self.fail(path, f"{value!r} is not one of {schema['enum']}")
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"expected an integer, got {value!r}")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, f"expected a number, got {value!r}")
        elif kind == "boolean":
            if not isinstance(value, bool):
                self.fail(path, f"expected a boolean, got {value!r}")

    def object(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {type(value).__name__}")
            return
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, member in value.items():
            if key in properties:
                self.value(member, properties[key], f"{path}.{key}")
            elif extra is not None:
                self.value(member, extra, f"{path}.{key}")
            elif properties or schema.get("type") == "object" and "properties" in schema:
                self.fail(f"{path}.{key}", "unknown field")


def _audit_defects(entry: Mapping[str, Any], item: str, path: str) -> list[Defect]:
    from google.cloud.audit import audit_log_pb2, bigquery_audit_metadata_pb2
    from google.protobuf import json_format

    payload = dict(entry.get("protoPayload") or {})
    if payload.get("@type") != "type.googleapis.com/google.cloud.audit.AuditLog":
        return []
    payload.pop("@type")
    defects = []
    try:
        json_format.ParseDict(payload, audit_log_pb2.AuditLog())
    except json_format.ParseError as exc:
        defects.append(Defect(item, f"{path}.protoPayload", f"not an AuditLog: {exc}"))
    metadata = dict(payload.get("metadata") or {})
    if metadata.get("@type") == "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata":
        metadata.pop("@type")
        try:
            json_format.ParseDict(metadata, bigquery_audit_metadata_pb2.BigQueryAuditMetadata())
        except json_format.ParseError as exc:
            defects.append(Defect(item, f"{path}.protoPayload.metadata", f"not a BigQueryAuditMetadata: {exc}"))
    return defects


# The Shielded VM integrity log's IntegrityEvent (gcp-escape-routes.md §8.1): no proto is published, so
# the documented example's fields are the schema. bootCounter is an int64 (a JSON string of digits).
INTEGRITY_EVENT = "type.googleapis.com/cloud_integrity.IntegrityEvent"
SEV_POLICY_BITS = {"debugEnabled": bool, "domainOnly": bool, "esRequired": bool, "keySharingAllowed": bool,
                   "minApiMajor": int, "minApiMinor": int, "sendAllowed": bool, "sevOnly": bool}
BOOT_REPORTS = ("earlyBootReportEvent", "lateBootReportEvent")


def _integrity_defects(entry: Mapping[str, Any], item: str, path: str) -> list[Defect]:
    payload = entry.get("jsonPayload")
    if not isinstance(payload, Mapping) or payload.get("@type") != INTEGRITY_EVENT:
        return []
    where = f"{path}.jsonPayload"
    defects = []
    if not str(entry.get("logName", "")).endswith("/logs/compute.googleapis.com%2Fshielded_vm_integrity"):
        defects.append(Defect(item, f"{path}.logName", "an IntegrityEvent belongs to the shielded_vm_integrity log"))
    resource = entry.get("resource") or {}
    if resource.get("type") != "gce_instance" or set(resource.get("labels") or {}) != {
            "instance_id", "project_id", "zone"}:
        defects.append(Defect(item, f"{path}.resource", "must be gce_instance with instance_id, project_id, zone"))
    if not isinstance(payload.get("bootCounter"), str) or not _INT64.fullmatch(payload["bootCounter"]):
        defects.append(Defect(item, f"{where}.bootCounter", "an int64 is a JSON string of digits"))
    for key, value in payload.items():
        if key in {"@type", "bootCounter"}:
            continue
        if key == "sevLaunchAttestationReportEvent" and isinstance(value, Mapping):
            unknown = set(value) - {"integrityEvaluationPassed", "sevPolicy"}
            if unknown or not isinstance(value.get("integrityEvaluationPassed"), bool):
                defects.append(Defect(item, f"{where}.{key}", f"unknown fields {sorted(unknown)} or a non-bool "
                                                               "integrityEvaluationPassed"))
            for bit, value_type in SEV_POLICY_BITS.items():
                given = (value.get("sevPolicy") or {}).get(bit)
                if given is not None and type(given) is not value_type:
                    defects.append(Defect(item, f"{where}.{key}.sevPolicy.{bit}", f"must be a {value_type.__name__}"))
            if set(value.get("sevPolicy") or {}) - set(SEV_POLICY_BITS):
                defects.append(Defect(item, f"{where}.{key}.sevPolicy", "unknown policy bit"))
        elif key in BOOT_REPORTS and isinstance(value, Mapping):
            if not isinstance(value.get("policyEvaluationPassed"), bool):
                defects.append(Defect(item, f"{where}.{key}", "a boot report carries policyEvaluationPassed"))
        else:
            defects.append(Defect(item, f"{where}.{key}", "not a documented IntegrityEvent field"))
    return defects


# Access Transparency's jsonPayload (TransparencyLog) has no proto in the client libraries: its fields as
# Google's reading-logs page documents them (reference §8.3). A field outside this table is a defect.
_TRANSPARENCY_FIELDS: dict[str, Any] = {
    "@type": str, "location": {"principalOfficeCountry": str, "principalEmployingEntity": str,
                               "principalPhysicalLocationCountry": str},
    "principalJobTitle": str, "product": [str], "reason": [{"type": str, "detail": str}],
    "permissionDetails": [{"permissionType": str, "logAccessed": bool}], "eventId": str,
    "accesses": [{"methodName": str, "resourceName": str}], "accessApprovals": [str],
}
_AT_REASONS = {"CUSTOMER_INITIATED_SUPPORT", "GOOGLE_INITIATED_SERVICE", "THIRD_PARTY_DATA_REQUEST",
               "GOOGLE_INITIATED_REVIEW", "GOOGLE_RESPONSE_TO_PRODUCTION_ALERT"}
# Cloud KMS Data Access `metadata.entries` carrying a Key Access Justification (reference §8.4): snake_case
# keys, booleans as the strings "true"/"false".
_KAJ_ENTRIES: dict[str, Any] = {
    "key_access_justification": {"@type": str, "reason": str},
    "key_access_justification_policy_metadata": {"customer_configured_policy_enforced": "bool-string",
                                                 "customer_configured_policy": {"allowed_access_reasons": [str]},
                                                 "justification_propagated_to_ekm": "bool-string"},
}


def _shape_defects(value: Any, shape: Any, item: str, path: str) -> list[Defect]:
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [Defect(item, path, "expected an object")]
        defects = []
        for key, member in value.items():
            if key not in shape:
                defects.append(Defect(item, f"{path}.{key}", "unknown field"))
            else:
                defects += _shape_defects(member, shape[key], item, f"{path}.{key}")
        return defects
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [Defect(item, path, "expected a list")]
        return [d for index, member in enumerate(value) for d in _shape_defects(member, shape[0], item, f"{path}[{index}]")]
    if shape == "bool-string":
        return [] if value in ("true", "false") else [Defect(item, path, f"{value!r}: Google prints \"true\"/\"false\"")]
    return [] if isinstance(value, shape) else [Defect(item, path, f"{value!r} is not a {shape.__name__}")]


def _staff_access_defects(entry: Mapping[str, Any], item: str, path: str) -> list[Defect]:
    """TransparencyLog entries and KMS Data Access justification metadata, against the tables above."""
    payload = entry.get("jsonPayload") or {}
    defects: list[Defect] = []
    if payload.get("@type") == "type.googleapis.com/google.cloud.audit.TransparencyLog":
        defects += _shape_defects(payload, _TRANSPARENCY_FIELDS, item, f"{path}.jsonPayload")
        defects += [Defect(item, f"{path}.jsonPayload.reason", f"unknown reason type {r.get('type')!r}")
                    for r in payload.get("reason") or [] if isinstance(r, dict) and r.get("type") not in _AT_REASONS]
        if (entry.get("resource") or {}).get("type") != "project":
            defects.append(Defect(item, f"{path}.resource.type", "Access Transparency entries are on `project`"))
    proto = entry.get("protoPayload") or {}
    kms_entries = ((proto.get("metadata") or {}).get("entries") or {}) if proto.get(
        "serviceName") == "cloudkms.googleapis.com" else {}
    if kms_entries:
        defects += _shape_defects(kms_entries, _KAJ_ENTRIES, item, f"{path}.protoPayload.metadata.entries")
    return defects


def _error_defects(service: str, status: int, body: Any, item: str) -> list[Defect]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(body) != {"error"}:
        return [Defect(item, "$", "an error answer must be one top-level `error` object")]
    defects = []
    if error.get("code") != status:
        defects.append(Defect(item, "$.error.code", f"{error.get('code')!r} is not the HTTP status {status}"))
    if not isinstance(error.get("message"), str):
        defects.append(Defect(item, "$.error.message", "missing"))
    if service in CLASSIC_ERRORS and not isinstance(error.get("errors"), list):
        defects.append(Defect(item, "$.error.errors", f"{service} errors carry the legacy `errors` list"))
    if service not in CLASSIC_ERRORS and not isinstance(error.get("status"), str):
        defects.append(Defect(item, "$.error.status", "a one-platform error names its google.rpc status"))
    return defects


# Google publishes no discovery document for the Confidential Computing API; the one answer the verifier
# records from it (CC-05) is the token signing keys, an RFC 7517 JWKS of RSA keys (reference §8.2).
_JWK_FIELDS = {"kty", "alg", "use", "kid", "n", "e"}


def _jwks_defects(status: int, body_path: Path, item: str) -> list[Defect]:
    try:
        body = json.loads(body_path.read_text(encoding="utf-8") or "{}")
    except json.JSONDecodeError:
        return [Defect(item, "$", "the JWKS answer is not JSON")]
    if status >= 400:
        return _error_defects("confidentialcomputing", status, body, item)
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or set(body) != {"keys"}:
        return [Defect(item, "$", "a JWKS is one object holding a `keys` list")]
    defects = []
    for index, key in enumerate(keys):
        if not isinstance(key, dict) or not set(key) <= _JWK_FIELDS or not all(isinstance(v, str) for v in key.values()):
            defects.append(Defect(item, f"$.keys[{index}]", f"a JWK holds string members of {sorted(_JWK_FIELDS)}"))
        elif key.get("kty") != "RSA" or not {"n", "e", "kid"} <= set(key):
            defects.append(Defect(item, f"$.keys[{index}]", "Google's token keys are RSA keys with kid, n and e"))
    return defects


def check_bundle(run_dir: Path) -> tuple[list[Defect], int]:
    """(defects, items checked) for every evidence item of one run directory."""
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    defects: list[Defect] = []
    checked = 0
    for item in manifest["evidence"]:
        service = item["service"]
        request = item.get("request") or {}
        status = int(item.get("status") or 0)
        body_path = run_dir / item["path"]
        if service == "confidentialcomputing" and status and body_path.exists():
            checked += 1
            defects += _jwks_defects(status, body_path, f"{item['id']} {service}.{item['method']}")
            continue
        if service not in DOCUMENTS or not status or not body_path.exists():
            continue
        try:
            body = json.loads(body_path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError:
            continue   # media downloads (task manifests) are not JSON resources
        # Probe items hold the request and the answer together; the answer is what Google sent.
        if isinstance(body, dict) and "response" in body and "request" in body and item.get("method", "").endswith(
                ("create", "insert")):
            body = body["response"]
        label = f"{item['id']} {service}.{item['method']}"
        checked += 1
        if status >= 400:
            defects += _error_defects(service, status, body, label)
            continue
        path = unquote(urlsplit(str(request.get("url", ""))).path)
        method = _match(service, str(request.get("httpMethod", "GET")), path)
        if method is None:
            defects.append(Defect(label, "$", f"no {DOCUMENTS[service]} method serves "
                                              f"{request.get('httpMethod')} {path}"))
            continue
        if method.response and isinstance(body, dict):
            alt = str((request.get("params") or {}).get("$alt", ""))
            validator = _Validator(service, label, int_enums="enum-encoding=int" in alt)
            validator.value(body, {"$ref": method.response}, "$")
            defects += validator.defects
        if service == "logging" and isinstance(body, dict):
            for index, entry in enumerate(body.get("entries") or []):
                defects += _audit_defects(entry, label, f"$.entries[{index}]")
                defects += _integrity_defects(entry, label, f"$.entries[{index}]")
                defects += _staff_access_defects(entry, label, f"$.entries[{index}]")
    return defects, checked
