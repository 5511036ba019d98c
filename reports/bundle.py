"""The run bundle: every file of one run, written so that a half-written run never looks complete.

Layout (DESIGN §6):

    run-<id>/
      manifest.json          run facts and every evidence item with its sha256
      evidence/NNNN-<service>-<method>.json   raw bytes as received
      result.json  report.html  junit.xml  results.sarif
      oscal-ar.json  oscal-poam.json (OSCAL; the POA&M only when a control is FAIL, ERROR or WAIVED)
      attestation.intoto.jsonl   DSSE envelope(s), one per line (only when a signer is given)
      attestation.tsr            RFC 3161 timestamp over signature 1 (only with a timestamper)

Everything is written into a hidden staging directory beside the target (`.run-<id>.*.partial`),
each file through a temporary file and a rename, and the staging directory is renamed to `run-<id>`
only at the very end. A crash leaves a `.partial` directory, never a `run-<id>` that lacks files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer

from sovaudit.audit.evidence import EvidenceItem, EvidenceLog
from sovaudit.reports.attestation import build_statement, envelope_line, sign_statement
from sovaudit.reports.formats import all_formats
from sovaudit.reports.html import EvidenceRef, evidence_ref
from sovaudit.reports.interface import FormatError, check_result
from sovaudit.reports.json_format import canonical_json
from sovaudit.reports.oscal import AR_FILE, POAM_FILE, NothingToPlan
from sovaudit.reports.paths import bundle_file
from sovaudit.reports.policy_lines import PolicyLines
from sovaudit.reports.redact import redact as redact_document
from sovaudit.reports.verify import ENVELOPE_FILE

MANIFEST_SCHEMA = "sovaudit/manifest/v1"
MANIFEST_FILE = "manifest.json"
RESULT_FILE = "result.json"
POLICY_FILE = "policy.yaml"  # the pack the run was judged against, byte for byte (a signed subject)
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_EVIDENCE_NAME = re.compile(r"^evidence/[A-Za-z0-9][A-Za-z0-9._-]*\.json$")
_FROM_RESULT = ("run_id", "target", "project", "policy", "tool", "principal", "started_at", "finished_at", "scope")


class BundleError(Exception):
    """A bundle cannot be written or read; `problems` names each file at fault."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def build_manifest(result: Mapping[str, Any], evidence: EvidenceLog, manifest_meta: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest: run facts (from the result, overridable by `manifest_meta`) and evidence entries."""
    for reserved in ("schema", "evidence"):
        if reserved in manifest_meta:
            raise BundleError(f"manifest_meta may not set {reserved!r}; write_bundle fills it in")
    manifest: dict[str, Any] = {"schema": MANIFEST_SCHEMA}
    manifest.update({key: result.get(key) for key in _FROM_RESULT if key in result})
    manifest.update(dict(manifest_meta))
    if manifest.get("run_id") != result.get("run_id"):
        raise BundleError(
            f"manifest_meta run_id {manifest.get('run_id')!r} differs from the result's {result.get('run_id')!r}"
        )
    manifest["evidence"] = [item.manifest_entry() for item in evidence]
    return manifest


def _check_evidence(evidence: EvidenceLog) -> None:
    seen: set[str] = set()
    for item in evidence:
        if not _EVIDENCE_NAME.match(item.path) or "/" in item.service or "/" in item.method:
            raise BundleError(f"evidence {item.id!r} would be written to {item.path!r}, which is not a plain file name")
        if item.id in seen:
            raise BundleError(f"evidence id {item.id!r} appears twice; ids must be unique within a run")
        seen.add(item.id)


def _signers(signer: Signer | Sequence[Signer] | None) -> list[Signer]:
    if signer is None:
        return []
    if isinstance(signer, Signer):
        return [signer]
    return list(signer)


def _probe_evidence_ids(result: Mapping[str, Any]) -> set[str]:
    return {str(eid) for probe in result.get("probes") or [] for eid in probe.get("evidence") or []}


def write_bundle(
    out_dir: Path,
    result: dict[str, Any],
    evidence: EvidenceLog,
    manifest_meta: Mapping[str, Any],
    signer: Signer | Sequence[Signer] | None = None,
    pack_tar: bool = False,
    *,
    redact: bool = False,
    redact_salt: bytes = b"",
    timestamper: Callable[[bytes], bytes] | None = None,
    policy_bytes: bytes | None = None,
) -> Path:
    """Write `out_dir/run-<id>/` (and `run-<id>.tar.gz` when `pack_tar`); return the run directory.

    `manifest_meta` adds or overrides run facts in manifest.json (the result supplies run_id, target,
    project, policy, tool, principal and times). With `redact`, people's email addresses in the
    result, the reports and the manifest's run facts become pseudonyms; evidence files stay raw.
    `timestamper` (signature bytes -> DER RFC 3161 reply) adds attestation.tsr beside the envelope;
    it runs before the bundle is moved into place, so a TSA failure leaves no half-timestamped run.
    `policy_bytes`, the pack file as loaded, is written as policy.yaml and signed with the rest, so a
    reader can see (and re-run against) exactly the rules that were applied; its sha256 must be the
    result's policy.sha256, or the bundle would carry a pack other than the one the verdict used.
    """
    out_dir = Path(out_dir)
    try:
        check_result(result)
    except FormatError as exc:
        raise BundleError(f"cannot write a bundle: {exc}") from exc
    run_id = str(result["run_id"])
    if not _RUN_ID.match(run_id):
        raise BundleError(f"run id {run_id!r} is not usable as a directory name (letters, digits, . _ - only)")
    _check_evidence(evidence)
    if policy_bytes is not None:
        declared = str((result.get("policy") or {}).get("sha256", ""))
        if hashlib.sha256(policy_bytes).hexdigest() != declared:
            raise BundleError(f"the policy pack given has sha256 {hashlib.sha256(policy_bytes).hexdigest()}, "
                              f"the result was judged against {declared}: the pack changed during the run")
    final = out_dir / f"run-{run_id}"
    if final.exists():
        raise BundleError(f"{final} already exists; a bundle is never overwritten — choose another --out")
    if redact:
        result = redact_document(result, redact_salt)
        manifest_meta = redact_document(dict(manifest_meta), redact_salt)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".run-{run_id}.", suffix=".partial"))
    except OSError as exc:
        raise BundleError(f"cannot create the bundle under {out_dir}: {exc.strerror or exc}") from exc
    try:
        digests: dict[str, str] = {}

        def put(name: str, data: bytes) -> None:
            write_atomic(staging / name, data)
            digests[name] = hashlib.sha256(data).hexdigest()

        for item in evidence:
            put(item.path, item.body)
        if policy_bytes is not None:
            put(POLICY_FILE, policy_bytes)
        manifest = build_manifest(result, evidence, manifest_meta)
        try:
            put(MANIFEST_FILE, canonical_json(manifest))
        except FormatError as exc:
            raise BundleError(f"manifest.json: {exc}") from exc
        signers = _signers(signer)
        key_id = signers[0].public_key.keyid if signers else None
        probe_ids = _probe_evidence_ids(result)
        refs: dict[str, EvidenceRef] = {
            item.id: evidence_ref(item.manifest_entry(), item.body if item.id in probe_ids else None) for item in evidence
        }
        try:
            # Render from the document exactly as result.json stores it (canonical bytes read back), the
            # same input `report render result.json` sees, so every format re-renders byte for byte:
            # key order (sorted), tuples as lists and any other in-memory detail cannot differ.
            stored = json.loads(canonical_json(dict(result)))
            stored_manifest = json.loads(canonical_json(manifest))  # as manifest.json beside it reads back
            # SARIF points each result at a line of policy.yaml: read from the bytes stored, as a re-render does.
            for fmt in all_formats(refs, key_id, stored_manifest, PolicyLines.of(policy_bytes)):
                try:
                    put(fmt.file_name, fmt.render(stored))
                except NothingToPlan:
                    continue  # nothing open or waived: no POA&M (OSCAL needs at least one item)
        except FormatError as exc:
            raise BundleError(f"cannot render the reports: {exc}") from exc
        if signers:
            first = [RESULT_FILE, "report.html", "junit.xml", "results.sarif", MANIFEST_FILE]
            first += [name for name in (AR_FILE, POAM_FILE) if name in digests]
            names = first + ([POLICY_FILE] if policy_bytes is not None else []) + [item.path for item in evidence]
            statement = build_statement(result, [(name, digests[name]) for name in names], key_id)
            _, envelope = sign_statement(statement, signers)
            write_atomic(staging / ENVELOPE_FILE, envelope_line(envelope))
            if timestamper is not None:
                from sovaudit.reports.timestamp import TIMESTAMP_FILE

                signature = base64.b64decode(envelope["signatures"][0]["sig"])
                write_atomic(staging / TIMESTAMP_FILE, timestamper(signature))
        _fsync_dir(staging / "evidence")
        _fsync_dir(staging)
        staging.chmod(0o755)
        try:
            os.rename(staging, final)  # the one step that makes the run look complete
        except OSError as exc:
            raise BundleError(f"cannot move the finished bundle into place at {final}: {exc.strerror}") from exc
        _fsync_dir(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if pack_tar:
        pack_bundle(final)
    return final


def pack_bundle(run_dir: Path) -> Path:
    """Pack `run-<id>/` as `run-<id>.tar.gz` beside it (atomically); owners and modes normalised."""
    run_dir = Path(run_dir)
    target = run_dir.parent / f"{run_dir.name}.tar.gz"

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(run_dir, arcname=run_dir.name, recursive=False, filter=normalise)
        for path in sorted(run_dir.rglob("*")):
            archive.add(path, arcname=f"{run_dir.name}/{path.relative_to(run_dir).as_posix()}", recursive=False, filter=normalise)
    write_atomic(target, buffer.getvalue())
    return target


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise BundleError(f"{what} {path} is missing") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{what} {path} is not JSON: {exc}") from exc


def load_bundle(run_dir: Path, *, strict: bool = True) -> tuple[dict[str, Any], dict[str, Any] | None, EvidenceLog]:
    """(manifest, result or None, evidence) of a bundle, each evidence file checked against the manifest.

    With `strict` (default), any missing or altered evidence file raises BundleError naming every
    such file. A manifest path that could leave the bundle raises BundleError in either mode. With `strict=False`, each bad file becomes an item with status 0 whose body says what
    is wrong, so the controls that read it come out ERROR naming the file, and the rest still run.
    The manifest itself is bound to the signature by `sovaudit report verify`, not checked here.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BundleError(f"{run_dir} is not a directory; give the run-<id>/ directory of a bundle")
    manifest = _read_json(run_dir / MANIFEST_FILE, "manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("evidence"), list):
        raise BundleError(f"{run_dir / MANIFEST_FILE} has no 'evidence' list; is this a sovaudit bundle?")
    result_path = run_dir / RESULT_FILE
    result = _read_json(result_path, "result") if result_path.exists() else None
    items: list[EvidenceItem] = []
    problems: list[str] = []
    for index, entry in enumerate(manifest["evidence"]):
        if not isinstance(entry, dict):
            raise BundleError(f"{MANIFEST_FILE} evidence[{index}] is not an object")
        try:
            placeholder = EvidenceItem.from_manifest_entry(entry, b"")
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{MANIFEST_FILE} evidence[{index}] lacks a field: {exc}") from exc
        name = entry.get("path")
        path, refusal = bundle_file(run_dir, name)
        problem = ""
        body = b""
        if path is None:
            # Never lenient: a name that could leave the bundle is a hostile manifest, not a lost file.
            raise BundleError(f"{MANIFEST_FILE} evidence[{index}] names the file {name!r}, which is refused: "
                              f"{refusal}")
        if name != placeholder.path:
            problem = f"evidence file {name!r} does not match its entry (expected {placeholder.path})"
        elif not path.is_file():
            problem = f"evidence file {name} listed in {MANIFEST_FILE} is missing"
        else:
            body = path.read_bytes()
            actual = hashlib.sha256(body).hexdigest()
            if actual != str(entry.get("sha256", "")).lower():
                problem = f"evidence file {name} was altered: its sha256 is {actual}, {MANIFEST_FILE} says {entry.get('sha256')}"
        if problem:
            problems.append(problem)
            entry = {**entry, "status": 0}
            body = problem.encode("utf-8")
        items.append(EvidenceItem.from_manifest_entry(entry, body))
    if problems and strict:
        raise BundleError(f"{len(problems)} evidence file(s) in {run_dir} cannot be trusted:\n  " + "\n  ".join(problems), problems)
    return manifest, result, EvidenceLog(tuple(items))
