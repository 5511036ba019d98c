"""The run bundle: the layout of DESIGN §6, all-or-nothing writes, and loading that names bad files."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from report_samples import make_evidence, make_result

from sovaudit.audit.evidence import EvidenceItem, EvidenceLog
from sovaudit.reports.bundle import BundleError, load_bundle, write_bundle
from sovaudit.reports.keys import generate_key, load_signing_key
from sovaudit.reports.redact import pseudonym


def test_bundle_has_the_designed_layout(tmp_path):
    signer = load_signing_key(generate_key(tmp_path / "k").private_path)
    run = write_bundle(tmp_path, make_result(), make_evidence(), {"notes": ["n"]}, signer=signer, pack_tar=True)
    assert run.name == "run-20261126T161800Z-3f9a1c"
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert files == sorted(["manifest.json", "result.json", "report.html", "junit.xml", "results.sarif",
                            "oscal-ar.json", "oscal-poam.json", "attestation.intoto.jsonl"] + [item.path for item in make_evidence()])
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["policy"]["sha256"] == "ab" * 32 and manifest["principal"] == "alice@hospital.example"
    assert manifest["notes"] == ["n"]
    assert manifest["evidence"] == [item.manifest_entry() for item in make_evidence()]
    for item in make_evidence():
        assert (run / item.path).read_bytes() == item.body  # raw bytes, untouched
    with tarfile.open(tmp_path / f"{run.name}.tar.gz") as archive:
        assert f"{run.name}/result.json" in archive.getnames()
    assert not list(tmp_path.glob(".run-*"))  # no staging left behind


def test_unsigned_bundle_has_no_attestation(tmp_path):
    run = write_bundle(tmp_path, make_result(), make_evidence(), {})
    assert not (run / "attestation.intoto.jsonl").exists() and (run / "report.html").exists()


class ExplodingSigner:
    """Stands for an interruption at the last step (a KMS outage, Ctrl-C) — not a fake of our code."""

    @property
    def public_key(self):
        return load_signing_key(generate_key(Path(self.dir), "ed25519").private_path).public_key

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def sign(self, payload: bytes):
        raise KeyboardInterrupt


def test_an_interrupted_run_never_looks_complete(tmp_path):
    from securesystemslib.signer import Signer

    Signer.register(ExplodingSigner)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=ExplodingSigner(tmp_path / "k"))
    assert list((tmp_path / "out").iterdir()) == []


def test_an_existing_run_is_never_overwritten(tmp_path):
    write_bundle(tmp_path, make_result(), make_evidence(), {})
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(tmp_path, make_result(), make_evidence(), {})


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "", ".hidden"])
def test_a_run_id_that_is_not_a_plain_name_is_refused(tmp_path, run_id):
    result = make_result()
    result["run_id"] = run_id
    with pytest.raises(BundleError, match="run id"):
        write_bundle(tmp_path, result, make_evidence(), {})


def test_evidence_with_a_path_in_its_method_is_refused(tmp_path):
    bad = EvidenceItem("0001", "p", "storage", "../../etc", {}, 200, b"{}", "t")
    with pytest.raises(BundleError, match="not a plain file name"):
        write_bundle(tmp_path, make_result(), EvidenceLog((bad,)), {})


def test_load_bundle_round_trips(tmp_path):
    run = write_bundle(tmp_path, make_result(), make_evidence(), {})
    manifest, result, evidence = load_bundle(run)
    assert result == make_result() and manifest["run_id"] == result["run_id"]
    assert evidence.items == make_evidence().items


def test_load_bundle_names_the_missing_and_the_altered_file(tmp_path):
    run = write_bundle(tmp_path, make_result(), make_evidence(), {})
    (run / "evidence/0001-orgpolicy-policies.getEffectivePolicy.json").unlink()
    (run / "evidence/0003-storage-buckets.insert.json").write_bytes(b'{"forged": true}')
    with pytest.raises(BundleError) as raised:
        load_bundle(run)
    problems = raised.value.problems
    assert "evidence/0001-orgpolicy-policies.getEffectivePolicy.json listed in manifest.json is missing" in problems[0]
    assert "evidence/0003-storage-buckets.insert.json was altered" in problems[1]


def test_lenient_load_turns_bad_files_into_failed_exchanges(tmp_path):
    run = write_bundle(tmp_path, make_result(), make_evidence(), {})
    (run / "evidence/0003-storage-buckets.insert.json").write_bytes(b"{}")
    _, _, evidence = load_bundle(run, strict=False)
    bad = evidence.by_purpose("probe.bucket:europe-west4")
    assert not bad.complete and "was altered" in bad.problem
    assert evidence.by_purpose("orgpolicy.effective").complete


def test_load_bundle_refuses_a_manifest_path_that_escapes(tmp_path):
    run = write_bundle(tmp_path, make_result(), make_evidence(), {})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["evidence"][0]["path"] = "../../etc/passwd"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="refused"):
        load_bundle(run)


def test_load_bundle_explains_a_directory_that_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="manifest"):
        load_bundle(tmp_path)


def test_redact_pseudonymises_people_but_keeps_service_accounts_and_evidence(tmp_path):
    result = make_result()
    result["controls"][0]["findings"][0]["message"] = "runs as batch-runner@fed-node-us.iam.gserviceaccount.com"
    run = write_bundle(tmp_path, result, make_evidence(), {}, redact=True)
    alice = pseudonym("alice@hospital.example")
    assert alice.startswith("principal-") and len(alice) == len("principal-") + 8
    for name in ("result.json", "report.html", "junit.xml", "results.sarif", "manifest.json"):
        text = (run / name).read_text()
        assert "hospital.example" not in text, name
    assert json.loads((run / "result.json").read_text())["principal"] == alice
    assert json.loads((run / "manifest.json").read_text())["principal"] == alice
    assert "batch-runner@fed-node-us.iam.gserviceaccount.com" in (run / "result.json").read_text()
    assert pseudonym("Alice@Hospital.example") == alice  # stable across spellings and runs
