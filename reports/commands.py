"""`sovaudit report verify|render` and `sovaudit keys generate|id`: parse options, call the modules.

Exit codes: 0 good, 1 verification failed, 2 unusable input (not JSON, missing file, bad key).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sovaudit.reports.keys import KEY_TYPES, KeyFileError


def _say(line: str, *, err: bool = False) -> None:
    # Every line may carry names from a bundle someone handed us: never let them drive the terminal.
    from sovaudit.reports.view import terminal_safe

    click.echo(terminal_safe(line), err=err)


def _fail_input(message: str) -> None:
    _say(f"error: {message}", err=True)
    raise SystemExit(2)


@click.group()
def report() -> None:
    """Verify a signed report, or render a result.json in another format."""


@report.command("verify")
@click.argument("envelope", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Public key (PEM) trusted to sign; repeat for several. Every signature must be by one of them. "
                   "Needed unless --trust names the keys.")
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The run-<id>/ directory holding the subjects (default: the envelope's directory).")
@click.option("--trust", "trust_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Trust policy (YAML): trusted signers with validity windows, TSAs, max age, simulated runs, "
                   "required project/policy. Each rule prints PASS/FAIL; any FAIL is exit 1.")
@click.option("--tsa-root", "tsa_roots", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PEM root certificate of a trusted RFC 3161 TSA; checks attestation.tsr offline.")
def verify_command(envelope: Path, key_paths: tuple[Path, ...], bundle_dir: Path | None,
                   trust_path: Path | None = None, tsa_roots: tuple[Path, ...] = ()) -> None:
    """Check ENVELOPE's signatures, then every subject's sha256 inside the bundle."""
    from sovaudit.reports.keys import load_public_key
    from sovaudit.reports.trust_check import TrustInputError, load_trust_inputs, time_and_trust
    from sovaudit.reports.verify import EnvelopeError, verify_envelope_file

    try:
        trust, roots, trust_keys = load_trust_inputs(trust_path, tsa_roots)
        keys = [load_public_key(path) for path in key_paths] + trust_keys
        outcome = verify_envelope_file(envelope, keys, bundle_dir)
    except (KeyFileError, EnvelopeError, TrustInputError) as exc:
        _fail_input(str(exc))
        return
    for check in outcome.checks:
        _say(f"{'OK ' if check.ok else 'BAD'} {check.what}: {check.reason}")
    for note in outcome.notes:
        _say(f"NOTE {note}")
    extra = time_and_trust(envelope, bundle_dir or envelope.parent, outcome, trust, roots, bool(tsa_roots))
    for line in extra.lines:
        _say(line)
    if extra.failures:
        outcome = type(outcome)(outcome.checks + extra.failures, outcome.statements, outcome.notes)
    if outcome.ok:
        subjects = sum(len(s.get("subject") or []) for s in outcome.statements)
        signatures = sum(1 for check in outcome.checks if "signature" in check.what)
        click.echo(f"VERIFIED: {signatures} signature(s), {subjects} subject(s)")
        return
    _say(f"FAILED: {len(outcome.failures)} problem(s); first: {outcome.failures[0].what}: {outcome.failures[0].reason}")
    raise SystemExit(1)


def _evidence_beside(result_path: Path, result: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Evidence refs and signing key id from the bundle a result.json sits in, when it does."""
    from sovaudit.reports.html import evidence_ref
    from sovaudit.reports.paths import bundle_file

    bundle = result_path.parent
    refs: dict[str, Any] = {}
    manifest_path = bundle / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError):
            manifest = {}
        probe_ids = {str(e) for p in result.get("probes") or [] for e in p.get("evidence") or []}
        for entry in manifest.get("evidence") or []:
            if not isinstance(entry, dict):
                continue
            body = None
            path, _ = bundle_file(bundle, entry.get("path"))
            if str(entry.get("id")) in probe_ids and path is not None and path.is_file():
                body = path.read_bytes()
            ref = evidence_ref(entry, body)
            refs[ref.id] = ref
    key_id = None
    envelope = bundle / "attestation.intoto.jsonl"
    if envelope.is_file():
        try:
            first = json.loads(envelope.read_bytes().splitlines()[0])
            key_id = str(first["signatures"][0]["keyid"])
        except (IndexError, KeyError, TypeError, ValueError):
            key_id = None
    return refs, key_id


def _manifest_beside(result_path: Path) -> dict[str, Any] | None:
    """The manifest.json of the bundle a result.json sits in (the OSCAL documents cite its digests)."""
    try:
        manifest = json.loads((result_path.parent / "manifest.json").read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


@report.command("render")
@click.argument("result_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "format_name", type=click.Choice(["html", "junit", "sarif", "json", "oscal", "poam"]),
              default="html", show_default=True,
              help="Output format; oscal = OSCAL Assessment Results, poam = OSCAL POA&M of open findings and waivers.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE (atomically) instead of stdout.")
def render_command(result_json: Path, format_name: str, out_path: Path | None) -> None:
    """Render RESULT_JSON (a sovaudit/result/v1 document) as HTML, JUnit XML, SARIF, canonical JSON or OSCAL.

    When RESULT_JSON sits in a run bundle, evidence links and probe transcripts come from its manifest.
    """
    from sovaudit.reports.bundle import write_atomic
    from sovaudit.reports.formats import get_format
    from sovaudit.reports.interface import FormatError
    from sovaudit.reports.oscal import NothingToPlan

    try:
        result = json.loads(result_json.read_bytes())
    except FileNotFoundError:
        _fail_input(f"{result_json} does not exist")
        return
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail_input(f"{result_json} is not JSON: {exc}")
        return
    if not isinstance(result, dict):
        _fail_input(f"{result_json} is not a JSON object")
        return
    refs, key_id = _evidence_beside(result_json, result)
    try:
        data = get_format(format_name, refs, key_id, _manifest_beside(result_json)).render(result)
    except NothingToPlan as exc:
        # Not an error of the input: a run with nothing open or waived has no POA&M to write.
        _say(f"no POA&M written: {exc}", err=True)
        return
    except FormatError as exc:
        _fail_input(f"{result_json}: {exc}")
        return
    if out_path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        try:
            write_atomic(out_path, data)
        except OSError as exc:
            _fail_input(f"cannot write {out_path}: {exc.strerror or exc}")
            return
        click.echo(f"wrote {out_path}", err=True)


@click.group()
def keys() -> None:
    """Create and identify attestation signing keys."""


@keys.command("generate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the key pair (created if needed).")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), default="ed25519", show_default=True)
@click.option("--name", help="Base file name (default: sovaudit-<type>); writes NAME.pem and NAME.pub.pem.")
def generate_command(out_dir: Path, key_type: str, name: str | None) -> None:
    """Write a private key (mode 0600) and its public half (*.pub.pem) for signing reports."""
    from sovaudit.reports.keys import generate_key

    try:
        generated = generate_key(out_dir, key_type, name)
    except KeyFileError as exc:
        _fail_input(str(exc))
        return
    click.echo(f"private key: {generated.private_path}  (keep secret; mode 0600)")
    click.echo(f"public key:  {generated.public_path}  (give this to whoever verifies)")
    click.echo(f"key id:      {generated.key_id}")


@keys.command("id")
@click.argument("public_key", type=click.Path(dir_okay=False, path_type=Path))
def id_command(public_key: Path) -> None:
    """Print a public key's keyid (hex sha256 of its DER SubjectPublicKeyInfo)."""
    from sovaudit.reports.keys import load_public_key

    try:
        click.echo(load_public_key(public_key).keyid)
    except KeyFileError as exc:
        _fail_input(str(exc))
