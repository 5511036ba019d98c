"""`report verify` shows what was attested and holds the bundle to it (issue 12, R1).

An old valid PASS handed over as new, a renamed directory, a manifest or result edited to agree with
another run, a simulated run passed off as real: each verified "VERIFIED" before; each must now be
shown or FAIL naming what differs.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from report_samples import make_evidence, make_result

from sovaudit.reports.bundle import pack_bundle, write_bundle
from sovaudit.reports.commands import report
from sovaudit.reports.keys import generate_key, load_signing_key


def _signed(tmp_path: Path, result: dict[str, Any] | None = None) -> tuple[Path, Path]:
    generated = generate_key(tmp_path / "k")
    run = write_bundle(tmp_path / "out", result or make_result(), make_evidence(), {},
                       signer=load_signing_key(generated.private_path))
    return run, generated.public_path


def _verify(target: Path, key: Path, *extra: str) -> Any:
    return CliRunner().invoke(report, ["verify", str(target), "--key", str(key), *extra])


def test_verify_prints_the_signed_facts(tmp_path):
    run, key = _signed(tmp_path)
    outcome = _verify(run / "attestation.intoto.jsonl", key)
    assert outcome.exit_code == 0, outcome.output
    for fact in ("run id:       20261126T161800Z-3f9a1c", "project:      fed-node-us", "job(s):       preprocess",
                 "audit window:", "verdict:", "signer key:", "signed at:    20", "node:"):
        assert fact in outcome.output, fact
    # The sample's target is a loopback simulator URL: unmistakable.
    assert "SIMULATED" in outcome.output and "SIMULATED: a rehearsal" in outcome.output


def test_a_real_target_is_not_called_simulated(tmp_path):
    result = make_result() | {"target": "gcp"}
    run, key = _signed(tmp_path, result)
    outcome = _verify(run, key)
    assert outcome.exit_code == 0, outcome.output
    assert "SIMULATED" not in outcome.output


def test_a_renamed_directory_fails(tmp_path):
    run, key = _signed(tmp_path)
    renamed = run.with_name("run-20270101T000000Z-aaaaaa")
    run.rename(renamed)
    outcome = _verify(renamed, key)
    assert outcome.exit_code == 1
    assert "directory name" in outcome.output and "run-20261126T161800Z-3f9a1c" in outcome.output


@pytest.mark.parametrize(("name", "field", "value"), [
    ("manifest.json", "run_id", "20270101T000000Z-aaaaaa"),
    ("manifest.json", "project", "other-project"),
    ("result.json", "verdict", "PASS"),
    ("result.json", "project", "other-project"),
])
def test_a_file_that_disagrees_with_the_statement_fails_even_with_its_digest_unchanged(tmp_path, name, field, value):
    """A file edited *and* re-signed by someone else's key is caught by the signature; here the signed
    statement itself is compared with the files, so a bundle whose files disagree with it FAILs
    naming the field, even before the digest check is considered."""
    run, key = _signed(tmp_path)
    document = json.loads((run / name).read_text())
    document[field] = value
    (run / name).write_text(json.dumps(document))
    outcome = _verify(run, key)
    assert outcome.exit_code == 1
    assert f"BAD {name}: {field} is {value!r}" in outcome.output


def test_expectations_name_what_differs(tmp_path):
    run, key = _signed(tmp_path)
    ok = _verify(run, key, "--expect-project", "fed-node-us", "--expect-job", "preprocess-genomes-001",
                 "--not-before", "2026-11-01T00:00:00Z")
    assert ok.exit_code == 0, ok.output
    wrong_project = _verify(run, key, "--expect-project", "fed-node-eu")
    assert wrong_project.exit_code == 1 and "not the expected 'fed-node-eu'" in wrong_project.output
    wrong_job = _verify(run, key, "--expect-job", "preprocess-genomes-999")
    assert wrong_job.exit_code == 1 and "preprocess-genomes-999" in wrong_job.output
    too_old = _verify(run, key, "--not-before", "2026-12-01T00:00:00Z")
    assert too_old.exit_code == 1 and "an older run" in too_old.output


def test_a_naive_not_before_is_bad_input(tmp_path):
    run, key = _signed(tmp_path)
    outcome = _verify(run, key, "--not-before", "2026-12-01T00:00:00")
    assert outcome.exit_code == 2 and "time zone" in outcome.output


def test_the_archive_as_received_verifies_and_leaves_nothing_behind(tmp_path, monkeypatch):
    run, key = _signed(tmp_path)
    archive = pack_bundle(run)
    shutil.rmtree(run)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    outcome = _verify(archive, key)
    assert outcome.exit_code == 0, outcome.output
    assert "VERIFIED" in outcome.output
    assert list(temp.iterdir()) == []


def test_a_renamed_archive_fails(tmp_path):
    run, key = _signed(tmp_path)
    archive = pack_bundle(run)
    renamed = archive.with_name("run-20270101T000000Z-aaaaaa.tar.gz")
    archive.rename(renamed)
    outcome = _verify(renamed, key)
    assert outcome.exit_code == 1 and "archive name" in outcome.output


def test_an_unsigned_bundle_says_so(tmp_path):
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {})
    key = generate_key(tmp_path / "k").public_path
    outcome = CliRunner().invoke(report, ["verify", str(run), "--key", str(key)])
    assert outcome.exit_code == 1
    assert "unsigned" in outcome.output and "UNSIGNED" in outcome.stderr


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"{}") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, kind: bytes, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize(("members", "why"), [
    ([_file("/etc/evil")], "absolute"),
    ([_file("run-x/../../evil")], ".."),
    ([_link("run-x/manifest.json", tarfile.SYMTYPE, "/etc/passwd")], "symbolic link"),
    ([_file("run-x/a"), _link("run-x/b", tarfile.LNKTYPE, "run-x/a")], "hard link"),
    ([_link("run-x/dev", tarfile.CHRTYPE, "")], "device"),
    ([_file("run-x/a"), _file("run-y/b")], "exactly one run-<id>/"),
    ([_file("run-x/a"), _file("run-x/a")], "twice"),
])
def test_a_hostile_archive_is_bad_input_naming_the_member(tmp_path, members, why):
    archive = _tar(tmp_path / "run-x.tar.gz", members)
    key = generate_key(tmp_path / "k").public_path
    before = sorted(tmp_path.rglob("*"))
    outcome = _verify(archive, key)
    assert outcome.exit_code == 2, outcome.output
    assert why in outcome.output
    assert sorted(tmp_path.rglob("*")) == before
    assert not (Path("/etc/evil").exists() and Path("/etc/evil").stat().st_size == 2)


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    from sovaudit.reports import archive as archive_module

    monkeypatch.setattr(archive_module, "MAX_BYTES", 1000)
    archive = _tar(tmp_path / "run-x.tar.gz", [_file("run-x/big", b"0" * 5000)])
    outcome = _verify(archive, generate_key(tmp_path / "k").public_path)
    assert outcome.exit_code == 2 and "decompression bomb" in outcome.output


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    from sovaudit.reports import archive as archive_module

    monkeypatch.setattr(archive_module, "MAX_MEMBERS", 3)
    archive = _tar(tmp_path / "run-x.tar.gz", [_file(f"run-x/{n}") for n in range(5)])
    outcome = _verify(archive, generate_key(tmp_path / "k").public_path)
    assert outcome.exit_code == 2 and "more than 3 members" in outcome.output


def test_a_file_that_is_not_an_archive_is_bad_input(tmp_path):
    fake = tmp_path / "run-x.tar.gz"
    fake.write_bytes(b"not gzip at all")
    outcome = _verify(fake, generate_key(tmp_path / "k").public_path)
    assert outcome.exit_code == 2 and "not a readable tar.gz" in outcome.output


def test_the_html_of_a_simulated_run_carries_the_banner_and_a_real_one_does_not(tmp_path):
    run, _ = _signed(tmp_path)
    page = (run / "report.html").read_text()
    assert "SIMULATED — not evidence about a real node" in page and "<title>[SIMULATED]" in page
    real, _ = _signed(tmp_path / "real", make_result() | {"target": "gcp"})
    assert "SIMULATED" not in (real / "report.html").read_text()


def test_the_html_indexes_every_evidence_file_with_its_digest(tmp_path):
    run, _ = _signed(tmp_path)
    page = (run / "report.html").read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["evidence"]
    for entry in manifest["evidence"]:
        assert f'<td class="mono">{entry["path"]}</td><td class="mono">{entry["sha256"]}</td>' in page


def test_an_unsigned_page_says_it_is_unsigned_and_points_to_no_attestation(tmp_path):
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {})
    page = (run / "report.html").read_text()
    assert "This bundle is unsigned" in page
    assert "attestation.intoto.jsonl" not in page
    signed, _ = _signed(tmp_path / "s")
    assert "This bundle is unsigned" not in (signed / "report.html").read_text()
