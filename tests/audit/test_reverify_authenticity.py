"""`verify --evidence` never launders a tampered bundle (issue 12, R1).

A signed FAIL bundle whose evidence, manifest and result were edited together re-evaluated to
"reproduces every recorded outcome", exit 0-ish, without a word about the signature. With --key the
attestation is now checked first; without it the output says loudly that nothing was checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from sovaudit.cli import main
from sovaudit.reports.bundle import pack_bundle
from sovaudit.reports.keys import generate_key
from sovaudit.simulator.server import SimServer


def _signed_run(sim: SimServer, tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    generated = generate_key(tmp_path / "keys")
    outcome = CliRunner().invoke(main, ["verify", "--policy", "us", "--target", sim.url, "--job",
                                        "preprocess-genomes-001", "--api-deadline", "2", "--no-probes",
                                        "--out", str(tmp_path / "out"), "--sign-key", str(generated.private_path),
                                        *extra], catch_exceptions=False)
    assert outcome.exit_code in (0, 1), outcome.output
    return next((tmp_path / "out").glob("run-*")), generated.public_path


def _reverify(bundle: Path, *extra: str) -> object:
    return CliRunner().invoke(main, ["verify", "--policy", "us", "--evidence", str(bundle), *extra],
                              catch_exceptions=False)


def _launder(run: Path) -> str:
    """Edit one evidence file, re-digest it in the manifest and rewrite result.json to the outcome the
    edited evidence re-evaluates to: every file agrees with every other; only the signature knows."""
    victim = next((run / "evidence").glob("*compute-instances.aggregatedList.json"))
    victim.write_bytes(victim.read_bytes().replace(b"natIP", b"natIp"))
    manifest = json.loads((run / "manifest.json").read_text())
    for entry in manifest["evidence"]:
        if entry["path"] == f"evidence/{victim.name}":
            entry["sha256"] = hashlib.sha256(victim.read_bytes()).hexdigest()
    (run / "manifest.json").write_text(json.dumps(manifest))
    fresh = _reverify(run, "--format", "json")
    document = json.loads(fresh.stdout[fresh.stdout.find("{"):])
    document.pop("reverify")
    (run / "result.json").write_text(json.dumps(document))
    return victim.name


def test_a_laundered_bundle_is_refused_with_the_key_and_flagged_without(sim_factory: Callable[..., SimServer],
                                                                        tmp_path: Path) -> None:
    run, key = _signed_run(sim_factory(scenarios=["vm-public-ip"]), tmp_path)
    victim = _launder(run)
    unchecked = _reverify(run)
    assert "reproduces every recorded outcome" in unchecked.output  # the edit is self-consistent...
    assert "authenticity was NOT checked" in unchecked.stdout  # ...and the output says nothing vouches
    assert "authenticity was NOT checked" in unchecked.stderr
    refused = _reverify(run, "--key", str(key))
    assert refused.exit_code == 1
    assert "REFUSED: tampered" in refused.output and "reproduces" not in refused.output
    assert victim in refused.output or "manifest.json" in refused.output or "result.json" in refused.output


def test_a_genuine_bundle_reverifies_with_its_key_from_the_archive_and_out_writes(
        sim_factory: Callable[..., SimServer], tmp_path: Path) -> None:
    run, key = _signed_run(sim_factory(), tmp_path)
    archive = pack_bundle(run)
    checked = _reverify(archive, "--key", str(key), "--out", str(tmp_path / "again"))
    assert checked.exit_code == 0, checked.output
    assert "reproduces every recorded outcome" in checked.output
    assert "NOT checked" not in checked.output
    (written,) = (tmp_path / "again").glob("run-*")
    assert written.name == run.name
    recorded = json.loads((run / "result.json").read_text())
    again = json.loads((written / "result.json").read_text())
    assert {c["id"]: c["outcome"] for c in again["controls"]} == {c["id"]: c["outcome"] for c in recorded["controls"]}
    assert (written / "report.html").is_file()
    # An archive renamed to pass for another run is refused as tampered.
    renamed = archive.rename(archive.with_name("run-20300101T000000Z-aaaaaa.tar.gz"))
    posing = _reverify(renamed, "--key", str(key))
    assert posing.exit_code == 1 and "REFUSED: tampered: archive name" in posing.output
    # A foreign key is named as such, not as tampering.
    stranger = generate_key(tmp_path / "stranger").public_path
    foreign = _reverify(run, "--key", str(stranger))
    assert foreign.exit_code == 1 and "REFUSED: untrusted key" in foreign.output


def test_an_unsigned_bundle_is_refused_with_a_key(sim_factory: Callable[..., SimServer], tmp_path: Path) -> None:
    run, key = _signed_run(sim_factory(), tmp_path)
    (run / "attestation.intoto.jsonl").unlink()
    refused = _reverify(run, "--key", str(key))
    assert refused.exit_code == 1 and "REFUSED: unsigned" in refused.output


def test_the_policy_pack_is_a_signed_subject_of_a_real_run(sim_factory: Callable[..., SimServer],
                                                           tmp_path: Path) -> None:
    run, key = _signed_run(sim_factory(), tmp_path)
    from sovaudit.policies.pack import resolve_policy

    pack = resolve_policy("us")
    assert (run / "policy.yaml").read_bytes() == Path(pack.path).read_bytes()
    envelope = json.loads((run / "attestation.intoto.jsonl").read_text())
    import base64

    statement = json.loads(base64.b64decode(envelope["payload"]))
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects["policy.yaml"] == pack.sha256
    # An edited pack is caught like any other subject.
    (run / "policy.yaml").write_bytes(b"# looser rules\n" + (run / "policy.yaml").read_bytes())
    checked = CliRunner().invoke(main, ["report", "verify", str(run), "--key", str(key)])
    assert checked.exit_code == 1 and "policy.yaml" in checked.output
