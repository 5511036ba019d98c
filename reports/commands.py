"""`sovaudit report verify|render` and `sovaudit keys generate|id`: parse options, call the modules.

Exit codes: 0 good, 1 verification failed, 2 unusable input (not JSON, missing file, bad key).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sovaudit import interrupts
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
@click.argument("envelope", type=click.Path(path_type=Path))
@click.option("--key", "key_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Public key (PEM) trusted to sign; repeat for several. Every signature must be by one of them. "
                   "Needed unless --trust names the keys.")
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The run-<id>/ directory holding the subjects (default: the envelope's directory).")
@click.option("--expect-project", help="FAIL unless the signed run is of this project.")
@click.option("--expect-job", "expect_jobs", multiple=True, help="FAIL unless the signed run judged this Batch job; "
              "repeat for several.")
@click.option("--not-before", help="FAIL unless the signed run finished at or after this RFC 3339 time.")
@click.option("--trust", "trust_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Trust policy (YAML): trusted signers with validity windows, TSAs, max age, simulated runs, "
                   "required project/policy. Each rule prints PASS/FAIL; any FAIL is exit 1.")
@click.option("--tsa-root", "tsa_roots", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PEM root certificate of a trusted RFC 3161 TSA; checks attestation.tsr offline.")
def verify_command(envelope: Path, key_paths: tuple[Path, ...], bundle_dir: Path | None,
                   expect_project: str | None, expect_jobs: tuple[str, ...], not_before: str | None,
                   trust_path: Path | None = None, tsa_roots: tuple[Path, ...] = ()) -> None:
    """Check ENVELOPE's signatures, every subject's sha256, and that the bundle is the signed run.

    ENVELOPE is attestation.intoto.jsonl, a run-<id>/ directory, or the run-<id>.tar.gz as received
    (extracted safely into a temporary directory that is removed afterwards).
    """
    from sovaudit.reports.archive import ArchiveError, is_archive, opened_bundle
    from sovaudit.reports.bound import parse_rfc3339

    threshold = None
    if not_before is not None:
        try:
            threshold = parse_rfc3339(not_before)
        except ValueError as exc:
            _fail_input(f"--not-before: {exc}")
            return
    received = envelope
    try:
        if is_archive(envelope) or envelope.is_dir():
            if bundle_dir is not None:
                _fail_input("--bundle applies to an envelope file; a directory or archive is its own bundle")
                return
            with opened_bundle(envelope) as run_dir:
                _verify_in(run_dir / "attestation.intoto.jsonl", key_paths, run_dir, received,
                           expect_project, expect_jobs, threshold, trust_path, tsa_roots)
        else:
            _verify_in(envelope, key_paths, bundle_dir, received, expect_project, expect_jobs, threshold,
                       trust_path, tsa_roots)
    except ArchiveError as exc:
        _fail_input(str(exc))


def _verify_in(envelope: Path, key_paths: tuple[Path, ...], bundle_dir: Path | None, received: Path,
               expect_project: str | None, expect_jobs: tuple[str, ...], threshold: Any,
               trust_path: Path | None = None, tsa_roots: tuple[Path, ...] = ()) -> None:
    from sovaudit.reports.bound import binding_checks, expectation_checks, statement_facts
    from sovaudit.reports.keys import load_public_key
    from sovaudit.reports.trust_check import TrustInputError, load_trust_inputs, time_and_trust
    from sovaudit.reports.verify import Check, EnvelopeError, parse_envelope, verify_envelope_file

    bundle = bundle_dir if bundle_dir is not None else envelope.parent
    if not envelope.exists() and (bundle / "manifest.json").is_file():
        _say(f"UNSIGNED: {bundle.name} carries no {envelope.name}; nothing vouches for its contents", err=True)
        _say(f"FAILED: the bundle is unsigned (no {envelope.name})")
        raise SystemExit(1)
    try:
        trust, roots, trust_keys = load_trust_inputs(trust_path, tsa_roots)
        keys = [load_public_key(path) for path in key_paths] + trust_keys
        outcome = verify_envelope_file(envelope, keys, bundle_dir)
        key_ids = [keyid for line in envelope.read_bytes().splitlines() if line.strip()
                   for keyid, _ in parse_envelope(line).signatures]
    except (KeyFileError, EnvelopeError, TrustInputError) as exc:
        _fail_input(str(exc))
        return
    checks = list(outcome.checks)
    facts = [statement_facts(statement, key_ids) for statement in outcome.statements]
    for statement, fact in zip(outcome.statements, facts, strict=True):
        checks.extend(binding_checks(statement, bundle.resolve() if bundle.name in ("", ".") else bundle, received))
        checks.extend(expectation_checks(fact, project=expect_project, jobs=expect_jobs, not_before=threshold))
    if not outcome.statements and (expect_project or expect_jobs or threshold):
        checks.append(Check("expectations", False, "not checked: no signed statement could be read"))
    for check in checks:
        _say(f"{'OK ' if check.ok else 'BAD'} {check.what}: {check.reason}")
    for note in outcome.notes:
        _say(f"NOTE {note}")
    # Trusted time (attestation.tsr) and the regulator's trust policy, once signatures and subjects are known.
    extra = time_and_trust(envelope, bundle, outcome, trust, roots, bool(tsa_roots))
    for line in extra.lines:
        _say(line)
    checks.extend(extra.failures)
    for fact in facts:
        _say("signed statement:")
        for line in fact.lines():
            _say(f"  {line}")
    if any(fact.simulated for fact in facts):
        _say("SIMULATED: the signed run was against the local simulator, not a real Google Cloud node", err=True)
    failures = [check for check in checks if not check.ok]
    if checks and not failures:
        subjects = sum(len(s.get("subject") or []) for s in outcome.statements)
        signatures = sum(1 for check in outcome.checks if "signature" in check.what)
        click.echo(f"VERIFIED: {signatures} signature(s), {subjects} subject(s)")
        if any(fact.simulated for fact in facts):
            click.echo("SIMULATED: a rehearsal on the local simulator — not evidence about a real node")
        return
    _say(f"FAILED: {len(failures)} problem(s); first: {failures[0].what}: {failures[0].reason}")
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


def _policy_lines_beside(result_path: Path) -> Any:
    """The lines of the policy.yaml in the bundle a result.json sits in (SARIF's startLine): the same
    bytes the bundle was rendered from, so the re-render is byte for byte."""
    from sovaudit.reports.bundle import POLICY_FILE
    from sovaudit.reports.policy_lines import PolicyLines

    try:
        return PolicyLines.of((result_path.parent / POLICY_FILE).read_bytes())
    except OSError:
        return PolicyLines()


@report.command("render")
@click.argument("result_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "format_name", type=click.Choice(["html", "junit", "sarif", "json", "oscal", "poam"]),
              default="html", show_default=True,
              help="Output format; oscal = OSCAL Assessment Results, poam = OSCAL POA&M of open findings and waivers.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE (atomically) instead of stdout.")
@click.option("--sarif-all", is_flag=True,
              help="SARIF only: emit passing and not-applicable findings too (default: FAIL, ERROR, WAIVED).")
def render_command(result_json: Path, format_name: str, out_path: Path | None, sarif_all: bool) -> None:
    """Render RESULT_JSON (a sovaudit/result/v1 document) as HTML, JUnit XML, SARIF, canonical JSON or OSCAL.

    When RESULT_JSON sits in a run bundle, evidence links and probe transcripts come from its manifest.
    """
    from sovaudit.reports.bundle import write_atomic
    from sovaudit.reports.formats import get_format
    from sovaudit.reports.interface import FormatError
    from sovaudit.reports.oscal import NothingToPlan
    from sovaudit.reports.sarif import SarifFormat

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
        fmt = get_format(format_name, refs, key_id, _manifest_beside(result_json), _policy_lines_beside(result_json))
        if sarif_all and isinstance(fmt, SarifFormat):
            fmt = SarifFormat(fmt.evidence_paths, include_passes=True, policy_lines=fmt.policy_lines)
        data = fmt.render(result)
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
        # The temporary file write_atomic renames into place, should an interrupt come first.
        interrupts.own_output(out_path.parent, (f".{out_path.name}.",))
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
