"""Cloud Storage JSON API v1, as `google.cloud.storage.Client` calls it.

Served: buckets insert/get/list/patch/update/delete/getIamPolicy/setIamPolicy; objects insert
(uploadType media, multipart and resumable, with Content-Range chunks on a session URL on the
simulator), get (metadata, or media with `alt=media` and `Range`), list (prefix, delimiter,
startOffset/endOffset, pageToken, maxResults), patch, delete, copy, rewrite (in one call) and compose. Object names arrive URL-encoded
(`a%2Fb`); Werkzeug decodes the path, so object routes use the `path` converter.

Why the details matter: controls read what this module answers (bucket `location` upper-case,
`locationType`, `encryption.defaultKmsKeyName`, `iamConfiguration`), probes expect the real refusal
(412 `conditionNotMet`, `'us' violates constraint 'constraints/gcp.resourceLocations'`), and SEC-04/05
read the data-access entries every object write leaves when the IAM audit config enables them.

Knowingly not faithful: no ACLs, object versioning, soft delete, retention
locks, notifications or XML API; `fields=` selects top-level keys only; bucket and project IAM are
judged for object reads and writes on the node's buckets (simulator/iam.py), not for bucket
metadata calls; the CMEK and foreign-bucket error texts are plausible, not confirmed. Every call on a
bucket is judged by VPC-SC for its caller and the bucket's project, and its audit entries land in
the bucket's project (a write into another project's bucket is in that project's log, not the node's).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import google_crc32c
from werkzeug.wrappers import Response

from sovaudit.simulator import audit_log, clock, enforcement, iam, projects
from sovaudit.simulator.http import ApiError, Router, SimRequest, classic_error
from sovaudit.simulator.state import SimState, StoredObject

API = "storage"
_V1 = "/storage/v1"

# Location types as Google classifies them; anything else is a region.
_MULTI_REGIONS = {"US", "EU", "ASIA"}
_DUAL_REGIONS = {"NAM4", "EUR4", "EUR5", "EUR7", "EUR8", "ASIA1"}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_DEFAULT_PAGE = 1000


def register(router: Router) -> None:
    add = router.add
    add("POST", f"{_V1}/b", insert_bucket, api=API)
    add("GET", f"{_V1}/b", list_buckets, api=API)
    add("GET", f"{_V1}/b/<bucket>", get_bucket, api=API)
    add("PATCH", f"{_V1}/b/<bucket>", patch_bucket, api=API)
    add("PUT", f"{_V1}/b/<bucket>", update_bucket, api=API)
    add("DELETE", f"{_V1}/b/<bucket>", delete_bucket, api=API)
    add("GET", f"{_V1}/b/<bucket>/iam", get_bucket_iam_policy, api=API)
    add("PUT", f"{_V1}/b/<bucket>/iam", set_bucket_iam_policy, api=API)
    add("GET", f"{_V1}/b/<bucket>/o", list_objects, api=API)
    add("POST", f"{_V1}/b/<bucket>/o", insert_object_metadata_only, api=API)
    add("GET", f"{_V1}/b/<bucket>/o/<path:name>", get_object, api=API)
    add("PATCH", f"{_V1}/b/<bucket>/o/<path:name>", patch_object, api=API)
    add("DELETE", f"{_V1}/b/<bucket>/o/<path:name>", delete_object, api=API)
    add("POST", f"{_V1}/b/<bucket>/o/<path:name>/copyTo/b/<dst_bucket>/o/<path:dst_name>", copy_object, api=API)
    add("POST", f"{_V1}/b/<bucket>/o/<path:name>/rewriteTo/b/<dst_bucket>/o/<path:dst_name>", rewrite_object,
        api=API)
    add("POST", f"{_V1}/b/<bucket>/o/<path:name>/compose", compose_object, api=API)
    add("GET", "/download/storage/v1/b/<bucket>/o/<path:name>", download_object, api=API)
    add("POST", "/upload/storage/v1/b/<bucket>/o", start_upload, api=API)
    add("PUT", "/upload/storage/v1/b/<bucket>/o", upload_chunk, api=API)
    add("DELETE", "/upload/storage/v1/b/<bucket>/o", cancel_upload, api=API)


# ---------------------------------------------------------------------------------------------
# small helpers


def rfc3339(epoch: float | None = None) -> str:
    """Cloud Storage's timestamp form: UTC, millisecond precision, `Z`."""
    moment = clock.now() if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return clock.rfc3339_millis(moment)


def _with_links(resource: dict[str, Any], base_url: str) -> dict[str, Any]:
    """selfLink/mediaLink pointing at this simulator, whatever the stored record says (the seed writes
    Google's hosts; a client following them would leave loopback)."""
    body = dict(resource)
    if body.get("kind") == "storage#object":
        path = object_path(body["bucket"], body["name"])
        body["selfLink"] = f"{base_url}{_V1}{path}"
        body["mediaLink"] = f"{base_url}/download/storage/v1{path}?generation={body['generation']}&alt=media"
    elif body.get("kind") == "storage#bucket":
        body["selfLink"] = f"{base_url}{_V1}/b/{body['name']}"
    return body


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def crc32c_b64(data: bytes) -> str:
    """crc32c as the JSON API carries it: base64 of the big-endian 4-byte checksum."""
    return _b64(google_crc32c.value(data).to_bytes(4, "big"))


def md5_b64(data: bytes) -> str:
    return _b64(hashlib.md5(data).digest())  # noqa: S324 - the API's own checksum, not security


def location_type(location: str, custom_placement: dict[str, Any] | None = None) -> str:
    upper = location.upper()
    if custom_placement and custom_placement.get("dataLocations"):
        return "dual-region"
    if upper in _MULTI_REGIONS:
        return "multi-region"
    if upper in _DUAL_REGIONS:
        return "dual-region"
    return "region"


def _store(state: SimState) -> dict[str, Any]:
    """Per-state storage extras: resumable sessions, bucket IAM policies, generation clock."""
    return state.extras.setdefault(API, {"uploads": {}, "iam": {}, "last_generation": 0})


def _next_generation(state: SimState) -> int:
    # Real generations are microsecond timestamps; keep them strictly increasing.
    store = _store(state)
    generation = max(int(time.time() * 1_000_000), store["last_generation"] + 1)
    store["last_generation"] = generation
    return generation


def _etag(seed: str) -> str:
    return _b64(hashlib.sha1(seed.encode()).digest()[:8])  # noqa: S324 - an opaque etag


def _bucket_or_404(state: SimState, name: str) -> dict[str, Any]:
    """The node's bucket, or another project's known bucket (reachable only when VPC-SC lets the call
    through, i.e. no perimeter or a dry-run one); anything else does not exist."""
    bucket = state.buckets.get(name)
    if bucket is not None:
        return bucket
    foreign = state.extras.get("foreign_buckets", {}).get(name)
    if foreign is None:
        raise classic_error(404, "The specified bucket does not exist.", "notFound")
    location = str(foreign.get("location") or "US").upper()
    return {"kind": "storage#bucket", "id": name, "name": name, "projectNumber": str(foreign.get("project_number")),
            "metageneration": "1", "location": location, "locationType": location_type(location),
            "storageClass": "STANDARD", "etag": "CAE="}


def _owned_bucket(state: SimState, name: str, permission: str) -> dict[str, Any]:
    """A bucket this node may administer; another project's bucket answers 403, as IAM would."""
    bucket = _bucket_or_404(state, name)
    if name not in state.buckets:
        raise classic_error(403, f"{_principal_of_state(state)} does not have {permission} access to the Google "
                            f"Cloud Storage bucket. Permission '{permission}' denied on resource (or it may not "
                            "exist).", "forbidden")
    return bucket


def _object_or_404(state: SimState, bucket: str, name: str) -> StoredObject:
    stored = state.objects.get((bucket, name))
    if stored is None:
        raise classic_error(404, f"No such object: {bucket}/{name}", "notFound")
    return stored


def _int_arg(req: SimRequest, name: str) -> int | None:
    return _int_value(req.args, name)


def _int_value(args: Mapping[str, str], name: str) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise classic_error(400, f"Invalid value for {name}: {raw!r} is not an integer.", "invalid",
                            location=name) from exc


def _page(names: list[str], req: SimRequest) -> tuple[list[str], str | None]:
    """Page over sorted names; the page token is the base64 of the last name served."""
    token = req.arg("pageToken")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise classic_error(400, f"Invalid pageToken {token!r}.", "invalid", location="pageToken") from exc
        names = [n for n in names if n > after]
    size = min(_int_arg(req, "maxResults") or _DEFAULT_PAGE,
               int(req.state.options.get("max_page_size") or _DEFAULT_PAGE))
    page = names[:size]
    more = len(names) > size
    return page, (base64.urlsafe_b64encode(page[-1].encode()).decode() if more and page else None)


def _select_fields(resource: dict[str, Any], req: SimRequest) -> dict[str, Any]:
    # `fields=` partial responses: only the top-level selection the clients use.
    fields = req.arg("fields")
    if not fields or "(" in fields:
        return resource
    wanted = {f.strip().split("/")[0] for f in fields.split(",")}
    return {k: v for k, v in resource.items() if k in wanted}


# ---------------------------------------------------------------------------------------------
# buckets


def _check_project(state: SimState, project: str | None) -> None:
    if project in (state.project_id, state.project_number):
        return
    raise classic_error(
        403,
        f"{_principal_of_state(state)} does not have storage.buckets.create access to the "
        f"Google Cloud project {project!r}. Permission 'storage.buckets.create' denied on resource "
        "(or it may not exist).",
        "forbidden",
    )


def _new_bucket(state: SimState, req: SimRequest, body: dict[str, Any]) -> dict[str, Any]:
    name = body["name"]
    now = rfc3339()
    location = str(body.get("location") or "US").upper()
    iam_in = body.get("iamConfiguration") or {}
    ubla_in = iam_in.get("uniformBucketLevelAccess") or iam_in.get("bucketPolicyOnly") or {}
    ubla: dict[str, Any] = {"enabled": bool(ubla_in.get("enabled", False))}
    if ubla["enabled"]:
        ubla["lockedTime"] = rfc3339(time.time() + 90 * 86400)
    bucket: dict[str, Any] = {
        "kind": "storage#bucket",
        "selfLink": f"{req.base_url}{_V1}/b/{name}",
        "id": name,
        "name": name,
        "projectNumber": state.project_number,
        "metageneration": "1",
        "location": location,
        "storageClass": body.get("storageClass") or "STANDARD",
        "etag": "CAE=",
        "timeCreated": now,
        "updated": now,
        "iamConfiguration": {
            "bucketPolicyOnly": dict(ubla),
            "uniformBucketLevelAccess": dict(ubla),
            "publicAccessPrevention": iam_in.get("publicAccessPrevention") or "inherited",
        },
        "locationType": location_type(location, body.get("customPlacementConfig")),
        "rpo": "DEFAULT",
    }
    for key in ("labels", "encryption", "versioning", "lifecycle", "retentionPolicy", "logging",
                "customPlacementConfig", "softDeletePolicy", "hierarchicalNamespace"):
        if body.get(key) is not None:
            bucket[key] = body[key]
    if "labels" in bucket:
        bucket["labels"] = {k: v for k, v in bucket["labels"].items() if v is not None}
    return bucket


def insert_bucket(req: SimRequest) -> Any:
    state = req.state
    body = req.json()
    if not isinstance(body, dict) or not body.get("name"):
        raise classic_error(400, "Required", "required")
    name = str(body["name"])
    _check_project(state, req.arg("project"))
    if not _BUCKET_NAME.match(name) or ".." in name or name.startswith("goog"):
        raise classic_error(400, f"Invalid bucket name: '{name}'", "invalid")
    location = str(body.get("location") or "US")
    _check_bucket_location(req, name, location)
    _check_bucket_key(state, body.get("encryption"), location)
    with state.lock:
        if name in state.buckets:
            raise classic_error(409, "Your previous request to create the named bucket succeeded and you "
                                "already own it.", "conflict")
        if name in state.extras.get("foreign_buckets", {}):
            raise classic_error(409, "The requested bucket name is not available. The bucket namespace is shared "
                                "by all users of the system. Please select a different name and try again.",
                                "conflict")
        bucket = _new_bucket(state, req, body)
        state.buckets[name] = bucket
    _admin_activity(req, "storage.buckets.create", name, request=body, response=bucket)
    return _with_links(bucket, req.base_url)


def get_bucket(req: SimRequest) -> Any:
    _guard_read(req, req.path_args["bucket"])
    with req.state.lock:
        bucket = _with_links(_bucket_or_404(req.state, req.path_args["bucket"]), req.base_url)
    return _select_fields(bucket, req)


def list_buckets(req: SimRequest) -> Any:
    state = req.state
    project = req.arg("project")
    if project not in (state.project_id, state.project_number):
        raise classic_error(403, f"The caller does not have storage.buckets.list access to the Google "
                            f"Cloud project {project!r}.", "forbidden")
    prefix = req.arg("prefix") or ""
    with state.lock:
        names = sorted(n for n, b in state.buckets.items()
                       if n.startswith(prefix) and _is_node_bucket(state, b))
        page, token = _page(names, req)
        items = [_with_links(state.buckets[n], req.base_url) for n in page]
    body: dict[str, Any] = {"kind": "storage#buckets"}
    if items:
        body["items"] = items
    if token:
        body["nextPageToken"] = token
    return body


def _merge_bucket(bucket: dict[str, Any], changes: dict[str, Any], *, replace: bool) -> None:
    mutable = ("labels", "encryption", "iamConfiguration", "versioning", "lifecycle", "retentionPolicy",
               "logging", "storageClass", "softDeletePolicy", "defaultEventBasedHold", "billing",
               "website", "cors", "autoclass", "rpo")
    for key in mutable:
        if key not in changes:
            if replace and key in bucket and key not in ("iamConfiguration", "storageClass", "rpo"):
                del bucket[key]
            continue
        value = changes[key]
        if value is None:
            bucket.pop(key, None)
        elif key == "labels" and not replace:
            labels = dict(bucket.get("labels") or {})
            for k, v in value.items():
                if v is None:
                    labels.pop(k, None)
                else:
                    labels[k] = v
            bucket["labels"] = labels
        elif key == "iamConfiguration":
            current = bucket.setdefault("iamConfiguration", {})
            if "publicAccessPrevention" in value:
                current["publicAccessPrevention"] = value["publicAccessPrevention"] or "inherited"
            ubla = value.get("uniformBucketLevelAccess") or value.get("bucketPolicyOnly")
            if ubla is not None:
                enabled: dict[str, Any] = {"enabled": bool(ubla.get("enabled"))}
                if enabled["enabled"]:
                    enabled["lockedTime"] = rfc3339(time.time() + 90 * 86400)
                current["uniformBucketLevelAccess"] = dict(enabled)
                current["bucketPolicyOnly"] = dict(enabled)
        else:
            bucket[key] = value
    if bucket.get("labels") == {}:
        del bucket["labels"]


def _modify_bucket(req: SimRequest, *, replace: bool) -> Any:
    state = req.state
    name = req.path_args["bucket"]
    changes = req.json()
    if not isinstance(changes, dict):
        raise classic_error(400, "The bucket resource must be a JSON object.", "invalid")
    if changes.get("location") and str(changes["location"]).upper() != state.buckets.get(name, {}).get(
            "location"):
        raise classic_error(400, "The bucket location cannot be changed.", "invalid")
    with state.lock:
        bucket = _owned_bucket(state, name, "storage.buckets.update")
        match = _int_arg(req, "ifMetagenerationMatch")
        if match is not None and match != int(bucket["metageneration"]):
            raise classic_error(412, "At least one of the pre-conditions you specified did not hold.",
                                "conditionNotMet", location="If-Match", location_type="header")
        if "encryption" in changes:
            _check_bucket_key(state, changes["encryption"], bucket["location"])
        _merge_bucket(bucket, changes, replace=replace)
        bucket["metageneration"] = str(int(bucket["metageneration"]) + 1)
        bucket["updated"] = rfc3339()
        bucket["etag"] = _etag(f"{name}:{bucket['metageneration']}")
        result = _with_links(bucket, req.base_url)
    _admin_activity(req, "storage.buckets.update", name, request=changes, response=result)
    return result


def patch_bucket(req: SimRequest) -> Any:
    return _modify_bucket(req, replace=False)


def update_bucket(req: SimRequest) -> Any:
    return _modify_bucket(req, replace=True)


def delete_bucket(req: SimRequest) -> Any:
    state = req.state
    name = req.path_args["bucket"]
    with state.lock:
        _owned_bucket(state, name, "storage.buckets.delete")
        if any(b == name for b, _ in state.objects):
            raise classic_error(409, "The bucket you tried to delete is not empty.", "conflict")
        del state.buckets[name]
        _store(state)["iam"].pop(name, None)
    _admin_activity(req, "storage.buckets.delete", name)
    return Response(status=204)


def _default_bucket_policy(state: SimState, name: str) -> dict[str, Any]:
    project = state.project_id
    return {
        "kind": "storage#policy",
        "resourceId": f"projects/_/buckets/{name}",
        "version": 1,
        "etag": "CAE=",
        "bindings": [
            {"role": "roles/storage.legacyBucketOwner",
             "members": [f"projectEditor:{project}", f"projectOwner:{project}"]},
            {"role": "roles/storage.legacyBucketReader", "members": [f"projectViewer:{project}"]},
            # Google's default policy also carries the object convenience bindings.
            {"role": "roles/storage.legacyObjectOwner",
             "members": [f"projectEditor:{project}", f"projectOwner:{project}"]},
            {"role": "roles/storage.legacyObjectReader", "members": [f"projectViewer:{project}"]},
        ],
    }


def get_bucket_iam_policy(req: SimRequest) -> Any:
    state = req.state
    name = req.path_args["bucket"]
    with state.lock:
        _owned_bucket(state, name, "storage.buckets.getIamPolicy")
        policy = _store(state)["iam"].get(name) or _default_bucket_policy(state, name)
        return dict(policy)


def set_bucket_iam_policy(req: SimRequest) -> Any:
    state = req.state
    name = req.path_args["bucket"]
    body = req.json()
    with state.lock:
        _owned_bucket(state, name, "storage.buckets.setIamPolicy")
        current = _store(state)["iam"].get(name) or _default_bucket_policy(state, name)
        if body.get("etag") and body["etag"] != current["etag"]:
            raise classic_error(412, "Precondition Failed", "conditionNotMet")
        public = sorted({m for b in body.get("bindings") or () for m in b.get("members") or ()
                         if m in ("allUsers", "allAuthenticatedUsers")})
        prevention = (state.buckets[name].get("iamConfiguration") or {}).get("publicAccessPrevention")
        if public and prevention == "enforced":
            # Public access prevention refuses public members outright (text per Google's PAP docs,
            # not confirmed verbatim): an insider must first switch it off, which SOV-04 also sees.
            raise classic_error(412, f"The member bindings {' and '.join(public)} are not allowed since public "
                                "access prevention is enforced.", "conditionNotMet")
        version = int(base64.b64decode(current["etag"])[-1]) + 1 if current["etag"] != "CAE=" else 2
        policy = {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{name}",
                  "version": int(body.get("version") or 1), "bindings": body.get("bindings") or [],
                  "etag": _b64(bytes([8, version % 256]))}
        _store(state)["iam"][name] = policy
    _admin_activity(req, "storage.setIamPermissions", name, request=body, response=policy)
    return dict(policy)


# ---------------------------------------------------------------------------------------------
# objects: metadata


def object_path(bucket: str, name: str) -> str:
    return f"/b/{bucket}/o/{quote(name, safe='')}"


def _new_object_metadata(state: SimState, base_url: str, bucket: dict[str, Any], name: str,
                         data: bytes, meta: dict[str, Any]) -> dict[str, Any]:
    generation = _next_generation(state)
    now = rfc3339(generation / 1_000_000)
    path = object_path(bucket["name"], name)
    obj: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{bucket['name']}/{name}/{generation}",
        "selfLink": f"{base_url}{_V1}{path}",
        "mediaLink": f"{base_url}/download/storage/v1{path}?generation={generation}&alt=media",
        "name": name,
        "bucket": bucket["name"],
        "generation": str(generation),
        "metageneration": "1",
        "contentType": meta.get("contentType") or "application/octet-stream",
        "storageClass": bucket.get("storageClass", "STANDARD"),
        "size": str(len(data)),
        "md5Hash": md5_b64(data),
        "crc32c": crc32c_b64(data),
        "etag": _etag(f"{bucket['name']}/{name}/{generation}"),
        "timeCreated": now,
        "updated": now,
        "timeStorageClassUpdated": now,
        "timeFinalized": now,
    }
    for key in ("metadata", "contentEncoding", "contentDisposition", "contentLanguage", "cacheControl",
                "customTime", "temporaryHold", "eventBasedHold"):
        if meta.get(key) is not None:
            obj[key] = meta[key]
    kms_key = meta.get("kmsKeyName") or (bucket.get("encryption") or {}).get("defaultKmsKeyName")
    if kms_key:
        obj["kmsKeyName"] = kms_key if "/cryptoKeyVersions/" in kms_key else f"{kms_key}/cryptoKeyVersions/1"
    return obj


def _check_generation_preconditions(args: Mapping[str, str], existing: StoredObject | None) -> None:
    """ifGenerationMatch / ifGenerationNotMatch; generation 0 means "the object must not exist"."""
    current = int(existing.metadata["generation"]) if existing else 0
    match = _int_value(args, "ifGenerationMatch")
    not_match = _int_value(args, "ifGenerationNotMatch")
    if (match is not None and match != current) or (not_match is not None and not_match == current):
        raise classic_error(412, "At least one of the pre-conditions you specified did not hold.",
                            "conditionNotMet", location="If-Match", location_type="header")


def _verify_client_checksums(meta: dict[str, Any], data: bytes) -> None:
    # Google refuses an upload whose declared checksum does not match the bytes received.
    for key, actual in (("crc32c", crc32c_b64), ("md5Hash", md5_b64)):
        declared = meta.get(key)
        if declared and declared != actual(data):
            raise classic_error(400, f"Provided {key} \"{declared}\" doesn't match calculated {key} "
                                f"\"{actual(data)}\".", "invalid")


def _create_object(req: SimRequest, bucket_name: str, name: str, data: bytes, meta: dict[str, Any],
                   preconditions: Mapping[str, str] | None = None) -> dict[str, Any]:
    state = req.state
    if not name:
        raise classic_error(400, "Required", "required")
    _verify_client_checksums(meta, data)
    with state.lock:
        bucket = _bucket_or_404(state, bucket_name)
        _check_generation_preconditions(req.args if preconditions is None else preconditions,
                                        state.objects.get((bucket_name, name)))
        obj = _new_object_metadata(state, req.base_url, bucket, name, data, meta)
        state.objects[(bucket_name, name)] = StoredObject(metadata=obj, data=bytes(data))
    _data_access(req, "storage.objects.create", bucket_name, name, write=True)
    return _with_links(obj, req.base_url)


def get_object(req: SimRequest) -> Any:
    bucket, name = req.path_args["bucket"], req.path_args["name"]
    if req.arg("alt") == "media":
        return download_object(req)
    _guard_object_read(req, bucket, iam.STORAGE_READ_ROLES, "storage.objects.get")
    with req.state.lock:
        _bucket_or_404(req.state, bucket)
        stored = _object_or_404(req.state, bucket, name)
        _check_requested_generation(req, stored)
        metadata = _with_links(stored.metadata, req.base_url)
    _data_access(req, "storage.objects.get", bucket, name, write=False)
    return _select_fields(metadata, req)


def _check_requested_generation(req: SimRequest, stored: StoredObject) -> None:
    generation = _int_arg(req, "generation")
    if generation is not None and generation != int(stored.metadata["generation"]):
        raise classic_error(404, f"No such object: {stored.metadata['bucket']}/{stored.metadata['name']}",
                            "notFound")


def list_objects(req: SimRequest) -> Any:
    state = req.state
    bucket_name = req.path_args["bucket"]
    _guard_object_read(req, bucket_name, iam.STORAGE_LIST_ROLES, "storage.objects.list")
    prefix = req.arg("prefix") or ""
    delimiter = req.arg("delimiter") or ""
    start, end = req.arg("startOffset") or "", req.arg("endOffset")
    with state.lock:
        _bucket_or_404(state, bucket_name)
        names = sorted(n for b, n in state.objects if b == bucket_name and n.startswith(prefix)
                       and n >= start and (end is None or n < end))
        # With a delimiter, names below a "directory" collapse into one prefix entry; a prefix
        # counts as one result for paging, as on Google.
        entries: list[str] = []
        prefixes: set[str] = set()
        for n in names:
            rest = n[len(prefix):]
            if delimiter and delimiter in rest:
                collapsed = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                if collapsed not in prefixes:
                    prefixes.add(collapsed)
                    entries.append(collapsed)
            else:
                entries.append(n)
        page, token = _page(entries, req)
        items = [_with_links(state.objects[(bucket_name, n)].metadata, req.base_url)
                 for n in page if n not in prefixes]
        page_prefixes = [n for n in page if n in prefixes]
    _data_access(req, "storage.objects.list", bucket_name, None, write=False)
    body: dict[str, Any] = {"kind": "storage#objects"}
    if page_prefixes:
        body["prefixes"] = page_prefixes
    if items:
        body["items"] = items
    if token:
        body["nextPageToken"] = token
    return body


def patch_object(req: SimRequest) -> Any:
    state = req.state
    bucket, name = req.path_args["bucket"], req.path_args["name"]
    changes = req.json()
    _guard_write(req, bucket, name)
    with state.lock:
        _bucket_or_404(state, bucket)
        stored = _object_or_404(state, bucket, name)
        meta = stored.metadata
        for key in ("contentType", "metadata", "contentEncoding", "contentDisposition", "contentLanguage",
                    "cacheControl", "customTime", "temporaryHold", "eventBasedHold"):
            if key in changes:
                if changes[key] is None:
                    meta.pop(key, None)
                elif key == "metadata":
                    merged = {**meta.get("metadata", {}), **changes[key]}
                    meta["metadata"] = {k: v for k, v in merged.items() if v is not None}
                else:
                    meta[key] = changes[key]
        meta["metageneration"] = str(int(meta["metageneration"]) + 1)
        meta["updated"] = rfc3339()
        result = _with_links(meta, req.base_url)
    _data_access(req, "storage.objects.update", bucket, name, write=True)
    return result


def delete_object(req: SimRequest) -> Any:
    state = req.state
    bucket, name = req.path_args["bucket"], req.path_args["name"]
    _guard_write(req, bucket, name)
    with state.lock:
        _bucket_or_404(state, bucket)
        stored = _object_or_404(state, bucket, name)
        _check_requested_generation(req, stored)
        _check_generation_preconditions(req.args, stored)
        del state.objects[(bucket, name)]
    _data_access(req, "storage.objects.delete", bucket, name, write=True)
    return Response(status=204)


# ---------------------------------------------------------------------------------------------
# objects: server-side copies (each one an object write, audited and perimeter-checked like uploads)

_COPIED_KEYS = ("contentType", "contentEncoding", "contentDisposition", "contentLanguage", "cacheControl",
                "metadata")


def _source_data(req: SimRequest, bucket: str, name: str) -> tuple[bytes, dict[str, Any]]:
    _guard_object_read(req, bucket, iam.STORAGE_READ_ROLES, "storage.objects.get")
    with req.state.lock:
        _bucket_or_404(req.state, bucket)
        stored = _object_or_404(req.state, bucket, name)
        generation = _int_arg(req, "sourceGeneration")
        if generation is not None and generation != int(stored.metadata["generation"]):
            raise classic_error(404, f"No such object: {bucket}/{name}", "notFound")
        data, meta = stored.data, {k: stored.metadata[k] for k in _COPIED_KEYS if k in stored.metadata}
    _data_access(req, "storage.objects.get", bucket, name, write=False)
    return data, meta


def _copy(req: SimRequest) -> dict[str, Any]:
    args = req.path_args
    _guard_write(req, args["dst_bucket"], args["dst_name"])
    data, meta = _source_data(req, args["bucket"], args["name"])
    overrides = {k: v for k, v in (req.json() or {}).items() if k in _COPIED_KEYS or k == "kmsKeyName"}
    return _create_object(req, args["dst_bucket"], args["dst_name"], data, {**meta, **overrides})


def copy_object(req: SimRequest) -> Any:
    return _copy(req)


def rewrite_object(req: SimRequest) -> Any:
    # Done in one call: no rewriteToken round trips, whatever the size.
    resource = _copy(req)
    return {"kind": "storage#rewriteResponse", "totalBytesRewritten": resource["size"],
            "objectSize": resource["size"], "done": True, "resource": resource}


def compose_object(req: SimRequest) -> Any:
    bucket, name = req.path_args["bucket"], req.path_args["name"]
    body = req.json() or {}
    sources = list(body.get("sourceObjects") or [])
    if not 1 <= len(sources) <= 32:
        raise classic_error(400, f"The number of source components provided ({len(sources)}) must be between "
                            "1 and 32.", "invalid")
    _guard_write(req, bucket, name)
    parts = [_source_data(req, bucket, str(source.get("name") or "")) for source in sources]
    destination = {k: v for k, v in (body.get("destination") or {}).items() if k in _COPIED_KEYS}
    return _create_object(req, bucket, name, b"".join(data for data, _ in parts),
                          {**parts[0][1], **destination})


# ---------------------------------------------------------------------------------------------
# objects: media


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def download_object(req: SimRequest) -> Response:
    bucket, name = req.path_args["bucket"], req.path_args["name"]
    _guard_object_read(req, bucket, iam.STORAGE_READ_ROLES, "storage.objects.get")
    with req.state.lock:
        _bucket_or_404(req.state, bucket)
        stored = _object_or_404(req.state, bucket, name)
        _check_requested_generation(req, stored)
        data, meta = stored.data, dict(stored.metadata)
    _data_access(req, "storage.objects.get", bucket, name, write=False)
    headers = {
        "X-Goog-Generation": meta["generation"],
        "X-Goog-Metageneration": meta["metageneration"],
        "X-Goog-Stored-Content-Length": meta["size"],
        "X-Goog-Stored-Content-Encoding": meta.get("contentEncoding", "identity"),
        "X-Goog-Storage-Class": meta["storageClass"],
        "ETag": meta["etag"],
        "Accept-Ranges": "bytes",
    }
    content_type = meta["contentType"]
    # The whole object's hashes, on ranged answers too (clients skip the check for partial reads).
    headers["X-Goog-Hash"] = f"crc32c={meta['crc32c']},md5={meta['md5Hash']}"
    requested = req.http.headers.get("Range")
    if not requested:
        return Response(data, status=200, headers=headers, content_type=content_type)
    match = _RANGE.match(requested.strip())
    total = len(data)
    if not match or (not match.group(1) and not match.group(2)):
        return Response(data, status=200, headers=headers, content_type=content_type)
    if match.group(1):
        first = int(match.group(1))
        last = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
    else:  # suffix range: the last N bytes
        first, last = max(total - int(match.group(2)), 0), total - 1
    if first >= total or first > last:
        raise ApiError(416, {"error": {"code": 416, "message": "Request range not satisfiable",
                                       "errors": [{"domain": "global", "reason": "requestedRangeNotSatisfiable",
                                                   "message": "Request range not satisfiable"}]}},
                       headers={"Content-Range": f"bytes */{total}"})
    headers["Content-Range"] = f"bytes {first}-{last}/{total}"
    return Response(data[first:last + 1], status=206, headers=headers, content_type=content_type)


def _parse_multipart(req: SimRequest) -> tuple[dict[str, Any], bytes, str]:
    """Split a `multipart/related` body into its JSON metadata part and its media part."""
    mimetype = req.http.mimetype
    boundary = req.http.mimetype_params.get("boundary")
    if mimetype != "multipart/related" or not boundary:
        raise classic_error(400, "Multipart upload requires a multipart/related body with a boundary.",
                            "invalid")
    raw = req.http.get_data(cache=True)
    delimiter = b"--" + boundary.encode()
    parts = raw.split(delimiter)
    # parts[0] is the preamble, then metadata, media, and the closing "--".
    if len(parts) < 4:
        raise classic_error(400, "Multipart body must hold a metadata part and a media part.", "invalid")

    def split_part(part: bytes) -> tuple[dict[str, str], bytes]:
        part = part[2:] if part.startswith(b"\r\n") else part
        head, _, content = part.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        return headers, content[:-2] if content.endswith(b"\r\n") else content

    _, meta_raw = split_part(parts[1])
    media_headers, media = split_part(parts[2])
    try:
        metadata = json.loads(meta_raw or b"{}")
    except ValueError as exc:
        raise classic_error(400, f"Invalid JSON in the multipart metadata part: {exc}", "parseError") from exc
    return metadata, media, media_headers.get("content-type", "application/octet-stream")


def start_upload(req: SimRequest) -> Any:
    bucket = req.path_args["bucket"]
    upload_type = req.arg("uploadType") or "media"
    if upload_type == "resumable" and req.arg("upload_id"):
        return upload_chunk(req)
    if upload_type == "media":
        name = req.arg("name") or ""
        _guard_write(req, bucket, name)
        meta = {"contentType": req.http.content_type or None}
        return _create_object(req, bucket, name, req.http.get_data(cache=True), meta)
    if upload_type == "multipart":
        meta, media, media_type = _parse_multipart(req)
        name = str(meta.get("name") or req.arg("name") or "")
        _guard_write(req, bucket, name)
        meta.setdefault("contentType", media_type)
        return _create_object(req, bucket, name, media, meta)
    if upload_type == "resumable":
        meta = req.json() or {}
        name = str(meta.get("name") or req.arg("name") or "")
        if not name:
            raise classic_error(400, "Required", "required")
        _guard_write(req, bucket, name)
        with req.state.lock:
            _bucket_or_404(req.state, bucket)
            _check_generation_preconditions(req.args, req.state.objects.get((bucket, name)))
        meta.setdefault("contentType", req.http.headers.get("X-Upload-Content-Type"))
        upload_id = secrets.token_urlsafe(24)
        _store(req.state)["uploads"][upload_id] = {
            "bucket": bucket, "name": name, "meta": meta, "data": bytearray(),
            "args": {k: v for k, v in req.args.items() if k.startswith("ifGeneration")},
        }
        location = f"{req.base_url}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id={upload_id}"
        return Response(b"", status=200, headers={"Location": location, "X-GUploader-UploadID": upload_id})
    raise classic_error(400, f"Invalid upload type {upload_type!r}.", "invalidParameter", location="uploadType")


_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


def upload_chunk(req: SimRequest) -> Any:
    """One PUT on a resumable session: append the chunk; 308 with `Range` until the last byte."""
    upload_id = req.arg("upload_id") or ""
    session = _store(req.state)["uploads"].get(upload_id)
    if session is None:
        raise classic_error(404, "No such upload session.", "notFound")
    chunk = req.http.get_data(cache=True)
    content_range = (req.http.headers.get("Content-Range") or "").strip()
    match = _CONTENT_RANGE.match(content_range) if content_range else None
    data: bytearray = session["data"]
    if content_range and not match:
        raise classic_error(400, f"Invalid Content-Range header {content_range!r}.", "invalid")
    total = None
    if match:
        total = int(match.group(3)) if match.group(3) != "*" else None
        if match.group(1) is not None:
            first, last = int(match.group(1)), int(match.group(2))
            if first > len(data):
                raise classic_error(400, f"Chunk starts at byte {first} but the session holds {len(data)} bytes.",
                                    "invalid")
            if last - first + 1 != len(chunk):
                raise classic_error(400, "Content-Range does not match the chunk length.", "invalid")
            data[first:] = chunk  # a resent chunk overwrites what the server already had
    else:  # no Content-Range: the whole object in one PUT
        data[:] = chunk
        total = len(data)
    if total is None or len(data) < total:
        headers = {"Range": f"bytes=0-{len(data) - 1}"} if data else {}
        return Response(b"", status=308, headers=headers)
    del _store(req.state)["uploads"][upload_id]
    # The preconditions were checked at session start; check again, as Google does at finalize.
    return _create_object(req, session["bucket"], session["name"], bytes(data), session["meta"],
                          preconditions=session["args"])


def cancel_upload(req: SimRequest) -> Any:
    _store(req.state)["uploads"].pop(req.arg("upload_id") or "", None)
    return Response(b"", status=499)


def insert_object_metadata_only(req: SimRequest) -> Any:
    """objects.insert on the metadata path: a zero-byte object (e.g. a "folder" placeholder)."""
    bucket = req.path_args["bucket"]
    meta = req.json() or {}
    name = str(meta.get("name") or req.arg("name") or "")
    _guard_write(req, bucket, name)
    return _create_object(req, bucket, name, b"", meta)


# ---------------------------------------------------------------------------------------------
# CMEK: a default key must exist and live where the data lives

_KMS_KEY = re.compile(r"^projects/([^/]+)/locations/([^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$")
# Multi-regions take keys from the matching multi-region key location (US -> us, EU -> europe).
_KEY_LOCATION_FOR = {"US": "us", "EU": "europe", "ASIA": "asia"}


def kms_key_problem(state: SimState, key_name: str, location: str) -> str | None:
    """Why `key_name` cannot protect data stored in `location`, or None when it can. Shared by the
    BigQuery module: both services refuse a key in another location or a key that does not exist.
    (Keys of other projects are not known here: only their location is checked.)"""
    match = _KMS_KEY.match(key_name or "")
    if not match:
        return f"Invalid Cloud KMS key name {key_name!r}: expected projects/P/locations/L/keyRings/R/cryptoKeys/K."
    project, key_location = match.groups()
    if project in (state.project_id, state.project_number) and key_name not in state.crypto_keys:
        return f"Cloud KMS key {key_name} does not exist."
    expected = _KEY_LOCATION_FOR.get(location.upper(), location.lower())
    if key_location.lower() != expected:
        return (f"Cloud KMS key {key_name} is in location {key_location}, which does not match the data "
                f"location {location.lower()} (it must be {expected}).")
    return None


def _check_bucket_key(state: SimState, encryption: Any, location: str) -> None:
    key = (encryption or {}).get("defaultKmsKeyName") if isinstance(encryption, dict) else None
    problem = kms_key_problem(state, str(key), location) if key else None
    if problem:
        raise classic_error(400, problem, "invalid")


# ---------------------------------------------------------------------------------------------
# access: the caller, the org policy, the perimeter, and the audit trail


def _principal_of_state(state: SimState) -> str:
    return str(state.node.get("service_account") or f"{state.project_number}-compute@developer.gserviceaccount.com")


def _principal(req: SimRequest) -> str:
    """Who is calling: the node's service account (the workload's identity), unless a test says
    otherwise with `X-Sim-Principal` (the anonymous credentials of the clients carry no identity)."""
    return req.http.headers.get("X-Sim-Principal") or _principal_of_state(req.state)


def _is_node_bucket(state: SimState, bucket: dict[str, Any]) -> bool:
    return str(bucket.get("projectNumber", state.project_number)) == state.project_number


def _bucket_location(state: SimState, name: str) -> str:
    bucket = state.buckets.get(name) or state.extras.get("foreign_buckets", {}).get(name) or {}
    return str(bucket.get("location") or "US")


def _check_bucket_location(req: SimRequest, name: str, location: str) -> None:
    """Refuse a bucket outside the effective `gcp.resourceLocations` policy: 412 conditionNotMet with
    the message Cloud Storage really sends (`'us' violates constraint '...'`), logged as a violation."""
    enforcement.check_location(req.state, location, api="storage", resource=name, principal=_principal(req))


def _owner_id(state: SimState, bucket: str) -> str:
    """The project whose logs record calls on `bucket` (Google logs in the resource's project, §2)."""
    return projects.bucket_owner(state, bucket).project_id


def _admin_activity(req: SimRequest, method: str, bucket: str, *, request: dict[str, Any] | None = None,
                    response: dict[str, Any] | None = None) -> None:
    del response  # Cloud Storage's admin entries carry no response body
    audit_log.storage_admin(req.state, bucket=bucket, method=method, principal=_principal(req),
                            timestamp=clock.now(), location=_bucket_location(req.state, bucket), request=request,
                            project=_owner_id(req.state, bucket))


def _data_access(req: SimRequest, method: str, bucket: str, name: str | None, *, write: bool) -> None:
    """A data-access entry (DATA_WRITE for writes, DATA_READ for reads) when the audit config enables it."""
    state = req.state
    location = _bucket_location(state, bucket).lower()
    owner = _owner_id(state, bucket)   # a foreign bucket's entries go to its project's log, per its auditConfigs
    if name is not None:  # audit_log derives DATA_READ/DATA_WRITE from the method
        audit_log.storage_object_access(state, bucket=bucket, object_name=name, principal=_principal(req),
                                        timestamp=clock.now(), location=location, method=method,
                                        caller_ip=req.http.remote_addr or "private", project=owner)
        return
    # objects.list names the bucket itself, not an object.
    if write or not audit_log.data_access_enabled(state, "storage.googleapis.com", "DATA_READ", owner,
                                                  _principal(req)):
        return
    audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service="storage.googleapis.com", method=method,
        resource_name=f"projects/_/buckets/{bucket}", resource_type="gcs_bucket",
        resource_labels={"project_id": owner, "bucket_name": bucket, "location": location},
        principal=_principal(req), timestamp=clock.now(), severity="INFO", permission=method,
        locations=[location], caller_ip=req.http.remote_addr or "private", project=owner))


def _guard_perimeter(req: SimRequest, bucket: str, name: str | None, method: str) -> None:
    """Every call on a bucket is judged by VPC Service Controls (simulator/vpcsc.py) for the caller
    (`X-Sim-Principal`; `X-Sim-Caller-Ip` for access levels) and the bucket's project: refused with
    403 `vpcServiceControls` and Policy Denied entries, or, in dry-run, only logged."""
    enforcement.check_bucket_write(req.state, bucket, name or "", principal=_principal(req), method=method,
                                   caller_ip=req.http.headers.get("X-Sim-Caller-Ip"))


def _guard_write(req: SimRequest, bucket: str, name: str | None) -> None:
    _guard_perimeter(req, bucket, name, "google.storage.objects.create")
    _authorize_objects(req, bucket, iam.STORAGE_WRITE_ROLES, "storage.objects.create")


def _guard_object_read(req: SimRequest, bucket: str, roles: frozenset[str], permission: str) -> None:
    """Reading objects: the perimeter first (a foreign bucket), then IAM on the node's buckets."""
    _guard_read(req, bucket)
    _authorize_objects(req, bucket, roles, permission)


def _authorize_objects(req: SimRequest, bucket: str, roles: frozenset[str], permission: str) -> None:
    """IAM on the node's own buckets: the bucket's policy plus the project's must grant the caller a
    role carrying `permission`, or Cloud Storage answers 403 `forbidden` (another project's bucket
    is judged by its owner, which the simulator does not model beyond the perimeter)."""
    state = req.state
    with state.lock:
        record = state.buckets.get(bucket)
        if record is None or not _is_node_bucket(state, record):
            return
        policy = _store(state)["iam"].get(bucket) or _default_bucket_policy(state, bucket)
        allowed = iam.may_use_bucket(state, policy, _principal(req), roles)
    if not allowed:
        what = "bucket" if permission == "storage.objects.list" else "object"
        raise classic_error(403, f"{_principal(req)} does not have {permission} access to the Google Cloud "
                            f"Storage {what}. Permission '{permission}' denied on resource (or it may not "
                            "exist).", "forbidden")


def _guard_read(req: SimRequest, bucket: str) -> None:
    # A bucket nobody knows is a plain 404 (no project owns it, so no perimeter judges it).
    if bucket in req.state.buckets or bucket in req.state.extras.get("foreign_buckets", {}):
        _guard_perimeter(req, bucket, None, "google.storage.objects.get")
