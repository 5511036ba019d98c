"""Bad input, the whole corpus through the `sovaudit` front door: every case is refused cleanly.

Each case runs one command line and must end with the documented exit code (2 for unusable input;
`report verify` exits 1 when a check fails, e.g. a signature by an unknown key), print a message that
names the file and the line, field or record at fault, print no traceback, and write nothing: no
output directory, no bundle, no stray file anywhere under the test's directory.

The cases are a table (no sidecar files the code might not read), and a separate test checks that
every file under tests/data/bad/ is used by some case, so a corpus file cannot sit there untested.
Placeholders in the command lines and messages: {bad} the corpus, {tmp} the test's directory,
{out} an output directory that must never appear, {dead} a loopback URL where nothing listens (a
case that reached the network would fail on it instead of being refused first).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bad_vcf_expectations import BAD_VCF
from click.testing import CliRunner

from sovaudit.cli import main

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad"
DEAD = "http://127.0.0.1:9"

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    exit_code: int
    says: tuple[str, ...]  # substrings of stdout+stderr, placeholders expanded
    corpus: tuple[str, ...] = ()  # files under tests/data/bad/ this case feeds in
    setup: Setup | None = None
    xfail: str = ""  # a known gap in a module this suite may not change (reported to its owner)
    env: tuple[tuple[str, str], ...] = ()  # environment variables for the run (placeholders expanded)
    marks: tuple[pytest.MarkDecorator, ...] = field(default_factory=tuple)


# -- setups: build inputs that cannot live in git (modes) or are made at run time ------------------

def private_key_copy(name: str, mode: int = 0o600) -> Setup:
    """Copy a corpus key into {tmp} with `mode`: git keeps no modes, and a key readable by others is
    refused for that before its content is looked at."""

    def setup(tmp: Path) -> None:
        copy = tmp / name
        shutil.copyfile(BAD / "keys" / name, copy)
        copy.chmod(mode)

    return setup


def generated_key(name: str, mode: int) -> Setup:
    def setup(tmp: Path) -> None:
        from sovaudit.reports.keys import generate_key

        pair = generate_key(tmp / "keys", "ed25519", name)
        pair.private_path.chmod(mode)

    return setup


def _signed(tmp: Path, subjects: list[str], extra_signers: int = 0) -> None:
    """A bundle at {tmp}/run signed by {tmp}/keys/trusted (+ `extra_signers` strangers' keys)."""
    from sovaudit.reports.attestation import build_statement, envelope_line, sign_statement
    from sovaudit.reports.keys import generate_key, load_signing_key

    run = tmp / "run"
    run.mkdir()
    (run / "result.json").write_text('{"verdict": "PASS"}\n')
    (tmp / "outside.json").write_text("{}\n")
    digests = []
    for name in subjects:
        path = run / name
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "0" * 64
        digests.append((name, digest))
    statement = build_statement({"run_id": "r1", "controls": []}, digests)
    signers = [load_signing_key(generate_key(tmp / "keys", "ed25519", "trusted").private_path)]
    for index in range(extra_signers):
        signers.append(load_signing_key(generate_key(tmp / "strangers", "ed25519", f"stranger{index}").private_path))
    _, envelope = sign_statement(statement, signers)
    (run / "attestation.intoto.jsonl").write_bytes(envelope_line(envelope))


def signed_bundle(subjects: list[str], extra_signers: int = 0) -> Setup:
    return lambda tmp: _signed(tmp, subjects, extra_signers)


def recorded_bundle_missing_evidence(tmp: Path) -> None:
    """A real posture-only bundle from the simulator at {tmp}/out-src/run-ID, then one evidence file lost."""
    from sovaudit.simulator import start

    server = start(node="us")
    try:
        result = CliRunner().invoke(main, ["verify", "--policy", "us", "--target", server.url, "--posture-only",
                                           "--no-probes", "--api-deadline", "2", "--out", str(tmp / "src")])
        assert result.exit_code == 0, result.output
    finally:
        server.stop()
    (run,) = (tmp / "src").glob("run-*")
    run.rename(tmp / "src" / "run")
    (lost,) = (tmp / "src" / "run" / "evidence").glob("*orgpolicy-policies.getEffectivePolicy*")
    lost.rename(tmp / "lost.json")


def trusted_key_only(tmp: Path) -> None:
    from sovaudit.reports.keys import generate_key

    generate_key(tmp / "keys", "ed25519", "trusted")


def _tar_with(name: str, symlink_to: str = "") -> bytes:
    """A gzip tar archive with one hostile member: `name` as a file, or as a symlink to `symlink_to`."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        if symlink_to:
            info.type, info.linkname = tarfile.SYMTYPE, symlink_to
            archive.addfile(info)
        else:
            info.size = 2
            archive.addfile(info, io.BytesIO(b"{}"))
    return buffer.getvalue()


def write_files(files: dict[str, bytes]) -> Setup:
    def setup(tmp: Path) -> None:
        for name, data in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return setup


def _vcf(records: str) -> bytes:
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=100000>\n"
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
        '##INFO=<ID=NOTE,Number=1,Type=String,Description="Free text">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n"
        "chr1\t100\t.\tA\tC\t50\tPASS\tDP=3\tGT\t0/1\t0/0\n"
    )
    return (header + records).encode()


VERIFY = ("verify", "--target", DEAD, "--api-deadline", "0.5", "--out", "{out}")
SIGN = (*VERIFY, "--policy", "us", "--sign-key")
RUN_LOCAL = ("pipeline", "run-local", "--out", "{out}")


def _policy_cases() -> list[Case]:
    p = "{bad}/policies"
    return [
        Case("policy-yaml-syntax", (*VERIFY, "--policy", f"{p}/syntax-error.yaml"), 2,
             (f"{p}/syntax-error.yaml:6:", "YAML syntax error"), ("policies/syntax-error.yaml",)),
        Case("policy-not-a-mapping", (*VERIFY, "--policy", f"{p}/not-a-mapping.yaml"), 2,
             (f"{p}/not-a-mapping.yaml:1:", "must be a mapping"), ("policies/not-a-mapping.yaml",)),
        Case("policy-missing-fields", (*VERIFY, "--policy", f"{p}/missing-fields.yaml"), 2,
             (f"{p}/missing-fields.yaml:1: network: required field is missing",),
             ("policies/missing-fields.yaml",)),
        Case("policy-many-problems", ("policy", "validate", f"{p}/many-problems.yaml"), 2,
             (f"{p}/many-problems.yaml:8: jurisdiction.allowed_regions[1]:",
              f"{p}/many-problems.yaml:22: severity_overrides.SEC-99: unknown control id",
              f"{p}/many-problems.yaml:32: waivers[1].expires: malformed date '2027-02-30'"),
             ("policies/many-problems.yaml",)),
        Case("policy-unknown-field", (*VERIFY, "--policy", f"{p}/unknown-field.yaml"), 2,
             (f"{p}/unknown-field.yaml:13: network.subnet: unknown field (did you mean 'subnetwork'?)",),
             ("policies/unknown-field.yaml",)),
        Case("policy-wrong-types", (*VERIFY, "--policy", f"{p}/wrong-types.yaml"), 2,
             (f"{p}/wrong-types.yaml:10: jurisdiction.allowed_regions: expected a list of strings",
              f"{p}/wrong-types.yaml:18: service_account: expected a string, got a list"),
             ("policies/wrong-types.yaml",)),
        Case("policy-waiver-unknown-control", (*VERIFY, "--policy", f"{p}/waiver-unknown-control.yaml"), 2,
             (f"{p}/waiver-unknown-control.yaml:26: waivers[0].control: unknown control id 'SOV-4'",),
             ("policies/waiver-unknown-control.yaml",)),
        Case("policy-waiver-without-expiry", (*VERIFY, "--policy", f"{p}/waiver-without-expiry.yaml"), 2,
             (f"{p}/waiver-without-expiry.yaml:26: waivers[0].expires: required field is missing",),
             ("policies/waiver-without-expiry.yaml",)),
        Case("policy-probe-region-inside", (*VERIFY, "--policy", f"{p}/probe-region-inside.yaml"), 2,
             (f"{p}/probe-region-inside.yaml:12: jurisdiction.probe_regions[1]:",
              "inside the allowed jurisdiction"),
             ("policies/probe-region-inside.yaml",)),
        Case("policy-values-outside-regions", (*VERIFY, "--policy", f"{p}/values-outside-regions.yaml"), 2,
             (f"{p}/values-outside-regions.yaml:11: jurisdiction.allowed_policy_values[1]:", "europe-west4"),
             ("policies/values-outside-regions.yaml",)),
        Case("policy-kms-outside-jurisdiction", (*VERIFY, "--policy", f"{p}/kms-outside-jurisdiction.yaml"), 2,
             (f"{p}/kms-outside-jurisdiction.yaml:21: kms.location:", "outside the jurisdiction"),
             ("policies/kms-outside-jurisdiction.yaml",)),
        Case("policy-yaml-alias-bomb", (*VERIFY, "--policy", f"{p}/yaml-bomb.yaml"), 2,
             (f"{p}/yaml-bomb.yaml:5: x-a: unknown field", "jurisdiction.allowed_regions[0]: expected a string"),
             ("policies/yaml-bomb.yaml",)),
        Case("policy-not-utf8", (*VERIFY, "--policy", f"{p}/not-utf8.yaml"), 2,
             (f"{p}/not-utf8.yaml:9: <document>: not UTF-8 text",), ("policies/not-utf8.yaml",)),
        Case("policy-missing-file", (*VERIFY, "--policy", "{tmp}/nope.yaml"), 2,
             ("{tmp}/nope.yaml: cannot read the pack",)),
    ]


def _vcf_cases() -> list[Case]:
    v = "{bad}/vcf"
    expect = {name: tuple(part for part in says if part) for name, says in BAD_VCF.items()}
    cases = [Case(f"vcf-{name}", (*RUN_LOCAL, f"{v}/{name}"), 2, (f"{v}/{name}: ", *says), (f"vcf/{name}",))
             for name, says in expect.items()]
    # Built at run time: tests/data/bad/vcf/ belongs to the pipeline; these two are reported there.
    cases += [
        Case("vcf-undefined-format-key", (*RUN_LOCAL, "{tmp}/undefined-format.vcf"), 2,
             ("{tmp}/undefined-format.vcf: ", "line 8 (chr1:200)", "FORMAT key 'XX' is not declared"),
             setup=write_files({"undefined-format.vcf": _vcf("chr1\t200\t.\tC\tT\t50\tPASS\tDP=3\tGT:XX\t0/1:3\t1/1:4\n")})),
        Case("vcf-huge-info-value", (*RUN_LOCAL, "{tmp}/huge-info.vcf.gz"), 2,
             ("{tmp}/huge-info.vcf.gz: ", "line 8 (chr1:200)", "INFO/NOTE value is 48.0 MiB", "1 MiB"),
             setup=write_files({"huge-info.vcf.gz": gzip.compress(
                 _vcf(f"chr1\t200\t.\tC\tT\t50\tPASS\tDP=3;NOTE={'x' * (48 << 20)}\tGT\t0/1\t1/1\n"), 1)})),
    ]
    return cases


def _key_cases() -> list[Case]:
    return [
        Case("key-missing", (*SIGN, "{tmp}/absent.pem"), 2,
             ("signing key {tmp}/absent.pem does not exist", "sovaudit keys generate")),
        Case("key-group-readable", (*SIGN, "{tmp}/keys/shared.pem"), 2,
             ("signing key {tmp}/keys/shared.pem is readable by group or others (mode 0640)", "chmod 600"),
             setup=generated_key("shared", 0o640)),
        Case("key-world-readable", (*SIGN, "{tmp}/keys/open.pem"), 2,
             ("signing key {tmp}/keys/open.pem is readable by group or others (mode 0604)",),
             setup=generated_key("open", 0o604)),
        Case("key-rsa", (*SIGN, "{tmp}/rsa-2048.pem"), 2,
             ("signing key {tmp}/rsa-2048.pem holds a key of type rsa", "ed25519 or ecdsa-p256"),
             ("keys/rsa-2048.pem",), private_key_copy("rsa-2048.pem")),
        Case("key-p384", (*SIGN, "{tmp}/ecdsa-p384.pem"), 2,
             ("signing key {tmp}/ecdsa-p384.pem holds a key of type ecdsa-secp384r1",),
             ("keys/ecdsa-p384.pem",), private_key_copy("ecdsa-p384.pem")),
        Case("key-not-pem", (*SIGN, "{tmp}/not-pem.pem"), 2,
             ("signing key {tmp}/not-pem.pem is not a PEM private key",),
             ("keys/not-pem.pem",), private_key_copy("not-pem.pem")),
        Case("key-truncated", (*SIGN, "{tmp}/truncated.pem"), 2,
             ("signing key {tmp}/truncated.pem is not a PEM private key",),
             ("keys/truncated.pem",), private_key_copy("truncated.pem")),
        Case("key-encrypted-no-password", (*SIGN, "{tmp}/encrypted-without-password.pem"), 2,
             ("signing key {tmp}/encrypted-without-password.pem is encrypted", "SOVAUDIT_SIGNING_KEY_PASSWORD"),
             ("keys/encrypted-without-password.pem",), private_key_copy("encrypted-without-password.pem")),
        Case("key-public-as-signing", (*SIGN, "{tmp}/public-key-given-as-signing-key.pub.pem"), 2,
             ("signing key {tmp}/public-key-given-as-signing-key.pub.pem holds a public key", "private half"),
             ("keys/public-key-given-as-signing-key.pub.pem",),
             private_key_copy("public-key-given-as-signing-key.pub.pem", 0o644)),
        Case("key-private-as-verification", ("report", "verify", "{tmp}/run/attestation.intoto.jsonl",
                                             "--key", "{tmp}/keys/trusted.pem"), 2,
             ("public key {tmp}/keys/trusted.pem holds a private key",), setup=signed_bundle(["result.json"])),
        Case("key-verification-not-pem", ("keys", "id", "{bad}/keys/not-pem.pem"), 2,
             ("public key {bad}/keys/not-pem.pem is not a PEM public key",), ("keys/not-pem.pem",)),
    ]


def _envelope_cases() -> list[Case]:
    e = "{bad}/envelopes"
    verify = ("report", "verify", "--key", "{tmp}/keys/trusted.pub.pem", "--bundle", "{tmp}")
    expect = {
        "empty.jsonl": ("envelope file {bad}/envelopes/empty.jsonl is empty",),
        "json-array.jsonl": ("json-array.jsonl line 1 must be a JSON object",),
        "no-payload.jsonl": ("no-payload.jsonl line 1 has no 'payload' field",),
        "not-json.jsonl": ("not-json.jsonl line 1 is not JSON",),
        "payload-not-base64.jsonl": ("payload-not-base64.jsonl line 1 field 'payload' is not standard base64",),
        "sig-not-base64.jsonl": ("sig-not-base64.jsonl line 1 signature 1 'sig' is not standard base64",),
        "signature-without-sig.jsonl": ("signature-without-sig.jsonl line 1 signature 1 has no 'sig' field",),
        "signatures-not-a-list.jsonl": ("signatures-not-a-list.jsonl line 1 field 'signatures' must be a list",),
    }
    cases = [Case(f"envelope-{name}", (*verify, f"{e}/{name}"), 2, says, (f"envelopes/{name}",),
                  trusted_key_only) for name, says in expect.items()]
    good = ("report", "verify", "{tmp}/run/attestation.intoto.jsonl", "--key", "{tmp}/keys/trusted.pub.pem")
    cases += [
        Case("envelope-missing-file", ("report", "verify", "{tmp}/absent.jsonl", "--key",
                                       "{tmp}/keys/trusted.pub.pem"), 2,
             ("envelope file {tmp}/absent.jsonl does not exist",), setup=trusted_key_only),
        Case("envelope-missing-key-file", ("report", "verify", "{tmp}/run/attestation.intoto.jsonl", "--key",
                                           "{tmp}/absent.pub.pem"), 2,
             ("public key {tmp}/absent.pub.pem does not exist",), setup=signed_bundle(["result.json"])),
        # `report verify` documents exit 1 for a check that fails (docs/verifying-a-report.md).
        Case("envelope-second-signature-unknown-key", good, 1,
             ("BAD signature 2: signed by an unknown key", "FAILED"), setup=signed_bundle(["result.json"], 1)),
        Case("envelope-subject-path-escape", good, 1,
             ("BAD subject '../outside.json': refused", "FAILED"),
             setup=signed_bundle(["result.json", "../outside.json"])),
        Case("envelope-subject-absolute-path", good, 1,
             ("BAD subject '/etc/passwd': refused", "FAILED"), setup=signed_bundle(["/etc/passwd"])),
        Case("envelope-subject-missing-file", good, 1,
             ("BAD subject 'report.html': missing from the bundle", "FAILED"),
             setup=signed_bundle(["result.json", "report.html"])),
    ]
    return cases


def _bundle_cases() -> list[Case]:
    b = "{bad}/bundles"
    evidence = ("verify", "--policy", "us", "--evidence")
    return [
        Case("bundle-manifest-not-json", (*evidence, f"{b}/manifest-not-json"), 2,
             (f"manifest {b}/manifest-not-json/manifest.json is not JSON",),
             ("bundles/manifest-not-json/manifest.json",)),
        Case("bundle-manifest-without-evidence", (*evidence, f"{b}/manifest-without-evidence"), 2,
             (f"{b}/manifest-without-evidence/manifest.json has no 'evidence' list",),
             ("bundles/manifest-without-evidence/manifest.json",)),
        Case("bundle-evidence-path-escape", (*evidence, f"{b}/evidence-path-escape"), 2,
             ("manifest.json evidence[0]", "'../../outside.json'", "refused"),
             ("bundles/evidence-path-escape/manifest.json",)),
        Case("bundle-manifest-without-scope", (*evidence, f"{b}/manifest-without-scope"), 2,
             ("manifest.json lacks the run's scope or times",),
             ("bundles/manifest-without-scope/manifest.json",)),
        # Documented in audit/reverify.py: a lost evidence file does not stop re-evaluation; the controls
        # reading it become ERROR naming the file and the run no longer matches its record (exit 1).
        Case("bundle-evidence-file-missing", (*evidence, "{tmp}/src/run"), 1,
             ("-orgpolicy-policies.getEffectivePolicy.json listed in manifest.json is missing", "MISMATCH SOV-01: recorded PASS, re-evaluated ERROR",
              "re-evaluation does NOT reproduce the recorded outcomes"),
             setup=recorded_bundle_missing_evidence),
        Case("bundle-missing-manifest", (*evidence, "{tmp}/run"), 2,
             ("manifest {tmp}/run/manifest.json is missing",),
             setup=write_files({"run/result.json": b"{}"})),
        Case("bundle-out-dir-instead-of-run-dir", (*evidence, "{tmp}/out"), 2,
             ("manifest {tmp}/out/manifest.json is missing",
              "give a run directory inside it, e.g. --evidence {tmp}/out/run-20261126T180000Z-abcdef"),
             setup=write_files({"out/run-20261126T180000Z-abcdef/manifest.json": b"{}"})),
        Case("bundle-directory-missing", (*evidence, "{tmp}/absent"), 2,
             ("{tmp}/absent is not a directory",)),
        Case("bundle-tarball-truncated", (*evidence, "{tmp}/run.tar.gz"), 2,
             ("{tmp}/run.tar.gz is not a readable tar.gz archive",), setup=write_files({"run.tar.gz": b"\x1f\x8b"})),
        Case("bundle-tarball-symlink", (*evidence, "{tmp}/run-x.tar.gz"), 2,
             ("member 'run-x/manifest.json' refused: a symbolic link",),
             setup=write_files({"run-x.tar.gz": _tar_with("run-x/manifest.json", "/etc/passwd")})),
        Case("bundle-tarball-escape", ("report", "verify", "{tmp}/run-x.tar.gz", "--key", "{tmp}/k.pub.pem"), 2,
             ("member 'run-x/../../evil.json' refused", "'..'"),
             setup=write_files({"run-x.tar.gz": _tar_with("run-x/../../evil.json")})),
        Case("bundle-tarball-absolute", ("report", "verify", "{tmp}/run-x.tar.gz", "--key", "{tmp}/k.pub.pem"), 2,
             ("member '/tmp/evil.json' refused: an absolute path",),
             setup=write_files({"run-x.tar.gz": _tar_with("/tmp/evil.json")})),
        Case("bundle-key-without-evidence", ("verify", "--policy", "us", "--key", "{tmp}/k.pub.pem"), 2,
             ("--key checks a received bundle: it applies to --evidence only",)),
        Case("report-verify-not-before-naive", ("report", "verify", "{tmp}/run", "--key", "{tmp}/k.pub.pem",
                                                "--not-before", "2026-12-01"), 2,
             ("--not-before", "has no time zone")),
        Case("render-result-not-json", ("report", "render", f"{b}/result-not-json.json"), 2,
             (f"{b}/result-not-json.json is not JSON",), ("bundles/result-not-json.json",)),
        Case("render-result-wrong-shape", ("report", "render", f"{b}/result-wrong-shape.json"), 2,
             (f"{b}/result-wrong-shape.json:", "'controls[0].outcome' is 'MAYBE'"),
             ("bundles/result-wrong-shape.json",)),
        Case("render-result-nested-types", ("report", "render", f"{b}/result-findings-not-a-list.json",
                                            "--format", "sarif"), 2,
             (f"{b}/result-findings-not-a-list.json:", "'controls[0].pillar' must be a string"),
             ("bundles/result-findings-not-a-list.json",)),
        Case("render-oscal-result-wrong-shape", ("report", "render", f"{b}/result-wrong-shape.json", "--format",
                                                 "oscal"), 2,
             (f"{b}/result-wrong-shape.json:", "'controls[0].outcome' is 'MAYBE'"),
             ("bundles/result-wrong-shape.json",)),
    ]


def _cli_cases() -> list[Case]:
    us = ("verify", "--policy", "us", "--target", DEAD, "--api-deadline", "0.5")
    return [
        Case("cli-posture-only-with-job", (*us, "--out", "{out}", "--posture-only", "--job", "j1"), 2,
             ("--posture-only", "--job")),
        Case("cli-sign-key-and-kms-key", (*us, "--out", "{out}", "--sign-key", "{tmp}/keys/k.pem", "--kms-key",
                                          "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"), 2,
             ("--sign-key and --kms-key are exclusive",), setup=generated_key("k", 0o600)),
        Case("cli-evidence-with-job", ("verify", "--policy", "us", "--evidence", "{tmp}", "--job", "j1"), 2,
             ("--evidence", "scope options do not apply")),
        Case("cli-target-remote-host", ("verify", "--policy", "us", "--target", "http://example.com:8080",
                                        "--out", "{out}"), 2,
             ("--target", "http://example.com:8080", "loopback")),
        Case("cli-target-metadata-server", ("verify", "--policy", "us", "--target", "http://169.254.169.254/",
                                            "--out", "{out}"), 2, ("--target", "loopback")),
        Case("cli-target-not-a-url", ("verify", "--policy", "us", "--target", "gpc", "--out", "{out}"), 2,
             ("--target 'gpc'", "expected 'gcp'")),
        # Root passes os.access everywhere; /proc refuses mkdir even to root: only trying tells.
        Case("cli-verify-out-cannot-be-created", (*us, "--out", "/proc/sovaudit-qa/out"), 2,
             ("--out", "/proc/sovaudit-qa/out: cannot create the directory")),
        Case("cli-demo-out-cannot-be-created", ("demo", "--out", "/proc/sovaudit-qa/out"), 2,
             ("--out", "/proc/sovaudit-qa/out: cannot create the directory")),
        Case("cli-run-local-out-cannot-be-created", ("pipeline", "run-local", "{tmp}/ok.vcf", "--out",
                                                     "/proc/sovaudit-qa/out"), 2,
             ("--out", "/proc/sovaudit-qa/out: cannot create the directory"),
             setup=write_files({"ok.vcf": b"##fileformat=VCFv4.2\n##contig=<ID=chr1,length=100>\n"
                                          b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                                          b"chr1\t10\t.\tA\tG\t.\t.\t.\n"})),
        # A wrong port used to spend the retry deadline on every API (about two minutes by default).
        Case("cli-target-nothing-listening", ("verify", "--policy", "us", "--target", DEAD, "--out", "{out}"), 2,
             ("--target http://127.0.0.1:9: nothing is listening there", "sovaudit sim serve --port 9")),
        Case("cli-cleanup-target-nothing-listening", ("cleanup", "--policy", "us", "--target", DEAD), 2,
             ("nothing is listening there",)),
        Case("cli-pipeline-status-target-nothing-listening", ("pipeline", "status", "j1", "--target", DEAD), 2,
             ("nothing is listening there",)),
        Case("cli-since-not-rfc3339", (*us, "--out", "{out}", "--since", "yesterday"), 2,
             ("--since", "'yesterday' is not an RFC 3339 time")),
        Case("cli-until-not-rfc3339", (*us, "--out", "{out}", "--until", "2026-13-45T99:00:00Z"), 2,
             ("--until", "is not an RFC 3339 time")),
        Case("cli-since-date-only", (*us, "--out", "{out}", "--since", "2026-11-26"), 2,
             ("--since", "'2026-11-26' is not an RFC 3339 time", "Z or an offset")),
        Case("cli-until-without-offset", (*us, "--out", "{out}", "--until", "2026-11-26T18:00:00"), 2,
             ("--until", "'2026-11-26T18:00:00' is not an RFC 3339 time", "Z or an offset")),
        Case("cli-since-after-until", (*us, "--out", "{out}", "--since", "2026-11-26T18:00:00Z",
                                       "--until", "2026-11-26T17:00:00Z"), 2,
             ("--since", "2026-11-26T18:00:00Z is not before --until", "window is empty")),
        Case("cli-out-under-a-file", (*us, "--out", "{tmp}/report.txt/out"), 2,
             ("--out", "{tmp}/report.txt is a file"), setup=write_files({"report.txt": b"not a directory"})),
        Case("render-out-under-a-file", ("report", "render", "{tmp}/result.json", "--format", "json", "--out",
                                         "{tmp}/report.txt/result.json"), 2,
             ("cannot write {tmp}/report.txt/result.json",),
             setup=write_files({"report.txt": b"a file", "result.json": json.dumps(
                 {"schema": "sovaudit/result/v1", "run_id": "r1", "verdict": "PASS", "controls": []}).encode()})),
        Case("keys-out-under-a-file", ("keys", "generate", "--out", "{tmp}/report.txt/keys"), 2,
             ("cannot create the key directory {tmp}/report.txt/keys",), setup=write_files({"report.txt": b"a file"})),
        Case("keys-name-escapes", ("keys", "generate", "--out", "{tmp}/keys", "--name", "../stolen"), 2,
             ("key name '../stolen' must be a plain file name",)),
        Case("cli-gcp-credentials-missing", ("verify", "--policy", "us", "--target", "gcp", "--out", "{out}"), 2,
             ("--target gcp: no usable Application Default Credentials", "{tmp}/adc.json was not found",
              "gcloud auth application-default login"),
             env=(("GOOGLE_APPLICATION_CREDENTIALS", "{tmp}/adc.json"),)),
        Case("cli-gcp-credentials-not-json", ("verify", "--policy", "us", "--target", "gcp", "--out", "{out}"), 2,
             ("no usable Application Default Credentials", "adc-not-json.json is not a valid json file"),
             ("cli/adc-not-json.json",), env=(("GOOGLE_APPLICATION_CREDENTIALS", "{bad}/cli/adc-not-json.json"),)),
        Case("cli-gcp-credentials-incomplete", ("cleanup", "--policy", "us", "--target", "gcp"), 2,
             ("no usable Application Default Credentials", "adc-incomplete.json", "missing fields"),
             ("cli/adc-incomplete.json",), env=(("GOOGLE_APPLICATION_CREDENTIALS", "{bad}/cli/adc-incomplete.json"),)),
        Case("cli-kms-unreachable", (*us, "--out", "{out}", "--kms-key",
                                     "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"), 2,
             ("Cloud KMS could not be reached for projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",)),
        Case("cli-kms-not-a-key-version", (*us, "--out", "{out}", "--kms-key", "projects/p/keys/k"), 2,
             ("--kms-key 'projects/p/keys/k' is not a key version",)),
        Case("cli-redact-without-out", (*us, "--redact"), 2, ("need --out DIR",)),
        Case("cli-job-not-an-id", (*us, "--out", "{out}", "--job", "../../other/jobs/x"), 2,
             ("--job", "'../../other/jobs/x'", "Batch job id")),
        Case("cli-project-not-an-id", (*us, "--out", "{out}", "--project", "fed-node-us/../x"), 2,
             ("--project", "'fed-node-us/../x'", "project id")),
        Case("cli-api-deadline-not-positive", ("verify", "--policy", "us", "--target", DEAD, "--out", "{out}",
                                               "--api-deadline", "-1"), 2, ("--api-deadline",)),
        Case("cli-unknown-format", (*us, "--format", "xml"), 2, ("--format", "'xml'")),
        Case("cli-run-local-no-workers", (*RUN_LOCAL, "--workers", "0", "{bad}/vcf/empty.vcf"), 2,
             ("--workers", "0")),
    ]


def _then(*setups: Setup) -> Setup:
    def setup(tmp: Path) -> None:
        for step in setups:
            step(tmp)

    return setup


def _tsa_root(tmp: Path) -> None:
    """A PEM root certificate at {tmp}/tsa-root.pem (a CA that issued no timestamp here)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bad-input TSA root")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    (tmp / "tsa-root.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _trust_cases() -> list[Case]:
    envelope = "{tmp}/run/attestation.intoto.jsonl"
    bad_trust = (b"schema: sovaudit/trust-policy/v1\nsigners:\n  - name: ops\n    keyid: NOT-HEX\n"
                 b"    valid_from: 2026-01-01T00:00:00Z\n")
    return [
        Case("trust-policy-malformed", ("report", "verify", envelope, "--trust", "{tmp}/trust.yaml"), 2,
             ("{tmp}/trust.yaml:4: signers[0].keyid: expected 64 lower-case hex digits",),
             setup=_then(signed_bundle(["result.json"]), write_files({"trust.yaml": bad_trust}))),
        Case("trust-policy-unknown-field", ("report", "verify", envelope, "--trust", "{tmp}/trust.yaml"), 2,
             ("{tmp}/trust.yaml:2: allow_simulate: unknown field",),
             setup=_then(signed_bundle(["result.json"]),
                         write_files({"trust.yaml": b"schema: sovaudit/trust-policy/v1\nallow_simulate: true\n"}))),
        Case("timestamp-corrupt", ("report", "verify", envelope, "--key", "{tmp}/keys/trusted.pub.pem",
                                   "--tsa-root", "{tmp}/tsa-root.pem"), 1,
             ("BAD timestamp: the timestamp is not a DER RFC 3161 reply", "FAILED"),
             setup=_then(signed_bundle(["result.json"]), _tsa_root,
                         write_files({"run/attestation.tsr": b"\x30\x82\x01\x00not a TimeStampResp"}))),
        Case("tsa-root-not-pem", ("report", "verify", envelope, "--key", "{tmp}/keys/trusted.pub.pem",
                                  "--tsa-root", "{tmp}/run/result.json"), 2,
             ("TSA root {tmp}/run/result.json is not a PEM certificate",), setup=signed_bundle(["result.json"])),
        Case("tsa-url-not-http", ("verify", "--policy", "us", "--target", "{dead}", "--out", "{out}",
                                  "--sign-key", "{tmp}/keys/trusted.pem", "--tsa", "ftp://tsa.example/tsr"), 2,
             ("--tsa 'ftp://tsa.example/tsr' is not an http(s) URL",), setup=trusted_key_only),
        Case("report-verify-no-key-no-trust", ("report", "verify", envelope), 2,
             ("no public key given",), setup=signed_bundle(["result.json"])),
        Case("demo-tsa-url-not-http", ("demo", "--out", "{out}", "--tsa", "tsa.example"), 2,
             ("--tsa 'tsa.example' is not an http(s) URL",)),
    ]


CASES = _policy_cases() + _vcf_cases() + _key_cases() + _envelope_cases() + _bundle_cases() + _cli_cases() + _trust_cases()


def _expand(text: str, tmp: Path) -> str:
    return text.replace("{bad}", str(BAD)).replace("{tmp}", str(tmp)).replace("{out}", str(tmp / "out")) \
        .replace("{dead}", DEAD)


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _params() -> list[object]:
    params = []
    for case in CASES:
        marks = list(case.marks)
        if case.xfail:
            marks.append(pytest.mark.xfail(reason=case.xfail, strict=True))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_bad_input_exits_with_a_message_naming_the_place_and_writes_nothing(case: Case, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOVAUDIT_SIGNING_KEY_PASSWORD", raising=False)
    for name, value in case.env:
        monkeypatch.setenv(name, _expand(value, tmp_path))
    if case.setup is not None:
        case.setup(tmp_path)
    corpus_before = _tree(BAD)
    before = _tree(tmp_path)
    argv = [_expand(arg, tmp_path) for arg in case.argv]
    result = CliRunner().invoke(main, argv)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == case.exit_code, output
    for expected in case.says:
        assert _expand(expected, tmp_path) in output, f"{expected!r} not in:\n{output}"
    assert _tree(tmp_path) == before, "the refused command left files behind"
    assert _tree(BAD) == corpus_before, "the command wrote into the corpus"


def test_every_corpus_file_is_fed_in_by_some_case() -> None:
    used = {name for case in CASES for name in case.corpus}
    present = {p.relative_to(BAD).as_posix() for p in BAD.rglob("*") if p.is_file() and p.name != "README.md"}
    assert present - used == set(), "corpus files no case uses"
    assert used - present == set(), "cases naming files that are not in the corpus"


def test_corpus_private_keys_are_refused_for_their_mode_before_their_content(tmp_path: Path) -> None:
    """The mode check comes first, so a group-readable key is never even parsed (git keeps no modes)."""
    key = tmp_path / "rsa.pem"
    shutil.copyfile(BAD / "keys" / "rsa-2048.pem", key)
    key.chmod(0o640)
    result = CliRunner().invoke(main, [*(_expand(a, tmp_path) for a in SIGN), str(key)])
    assert result.exit_code == 2
    assert "readable by group or others" in result.stderr and "rsa" not in result.stderr.replace(str(key), "")
    assert not (tmp_path / "out").exists()
    assert os.stat(key).st_mode & 0o777 == 0o640
