"""Trusted time (RFC 3161 over the DSSE signature) and the verifier's trust policy, end to end.

A real TSA answers on loopback (local_tsa.py: `openssl ts -reply` with a throwaway CA and a TSA
certificate carrying the critical timeStamping EKU); `report verify` checks its token offline.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from local_tsa import POLICY_OID, LocalTsa, make_ca
from report_samples import make_evidence, make_result

from sovaudit.cli import main
from sovaudit.reports.bundle import write_bundle
from sovaudit.reports.keys import generate_key, load_signing_key
from sovaudit.reports.timestamp import TIMESTAMP_FILE, TimestampError, check_tsa_url, request_timestamp
from sovaudit.reports.trust import TrustPolicyError, apply_trust, is_simulated, load_trust_policy


@pytest.fixture
def tsa(tmp_path: Path):
    directory = tmp_path / "tsa"
    directory.mkdir()
    server = LocalTsa(directory)
    yield server
    server.close()


@pytest.fixture
def stamped(tmp_path: Path, tsa: LocalTsa):
    """A signed bundle with attestation.tsr from the local TSA; (run dir, key pair)."""
    pair = generate_key(tmp_path / "keys", "ed25519", "ops")
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=load_signing_key(pair.private_path),
                       timestamper=partial(request_timestamp, tsa.url))
    return run, pair


def _verify(run: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["report", "verify", str(run / "attestation.intoto.jsonl"), *extra])
    return result.exit_code, result.output


def _signature(run: Path) -> bytes:
    envelope = json.loads((run / "attestation.intoto.jsonl").read_bytes().splitlines()[0])
    return base64.b64decode(envelope["signatures"][0]["sig"])


def _trust(tmp_path: Path, pair, tsa: LocalTsa, *, valid_from: str = "2020-01-01T00:00:00Z",
           valid_until: str = "", extra: str = "allow_simulated: true\n") -> Path:
    until = f"    valid_until: {valid_until}\n" if valid_until else ""
    path = tmp_path / "trust.yaml"
    path.write_text(f"""schema: sovaudit/trust-policy/v1
signers:
  - name: ops
    public_key: {pair.public_path}
    valid_from: {valid_from}
{until}tsas:
  - name: local
    root: {tsa.root_pem}
    policy_oid: {POLICY_OID}
{extra}""")
    return path


def test_a_valid_timestamp_prints_the_trusted_time(stamped, tsa):
    run, pair = stamped
    assert (run / TIMESTAMP_FILE).is_file()
    code, out = _verify(run, "--key", str(pair.public_path), "--tsa-root", str(tsa.root_pem))
    assert code == 0, out
    assert "OK  timestamp: trusted time" in out and "TRUSTED TIME: 20" in out
    assert "not covered" not in out  # the token is not a subject and is not reported as one


def test_a_timestamp_over_other_bytes_fails(stamped, tsa):
    run, pair = stamped
    (run / TIMESTAMP_FILE).write_bytes(request_timestamp(tsa.url, _signature(run) + b"x"))
    code, out = _verify(run, "--key", str(pair.public_path), "--tsa-root", str(tsa.root_pem))
    assert code == 1, out
    assert "BAD timestamp: the timestamp covers other bytes" in out


def test_a_timestamp_from_an_untrusted_tsa_fails(stamped, tmp_path):
    run, pair = stamped
    other = tmp_path / "other"
    other.mkdir()
    stranger_root, _, _ = make_ca(other, "Stranger Root")
    code, out = _verify(run, "--key", str(pair.public_path), "--tsa-root", str(stranger_root))
    assert code == 1, out
    assert "does not verify under any trusted TSA root" in out


def test_a_corrupt_timestamp_file_fails_not_crashes(stamped, tsa):
    run, pair = stamped
    (run / TIMESTAMP_FILE).write_bytes(b"\x30\x03garbage")
    code, out = _verify(run, "--key", str(pair.public_path), "--tsa-root", str(tsa.root_pem))
    assert code == 1, out
    assert "BAD timestamp: the timestamp is not a DER RFC 3161 reply" in out


def test_demanding_trusted_time_of_a_bundle_without_one_fails(tmp_path, tsa):
    pair = generate_key(tmp_path / "keys", "ed25519", "ops")
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=load_signing_key(pair.private_path))
    code, out = _verify(run, "--key", str(pair.public_path), "--tsa-root", str(tsa.root_pem))
    assert code == 1, out
    assert "no trusted time" in out


def test_trust_policy_passes_rule_by_rule(stamped, tsa, tmp_path):
    run, pair = stamped
    trust = _trust(tmp_path, pair, tsa, extra="allow_simulated: true\nproject: fed-node-us\nmax_age: 3650d\n")
    code, out = _verify(run, "--trust", str(trust))
    assert code == 0, out
    for rule in ("signer", "key validity", "max_age", "simulated", "project"):
        assert f"PASS trust {rule}:" in out
    assert "by trusted time" in out and "TRUSTED:" in out


def test_a_timestamp_outside_the_key_window_fails(stamped, tsa, tmp_path):
    run, pair = stamped
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out = _verify(run, "--trust", str(_trust(tmp_path, pair, tsa, valid_until=yesterday)))
    assert code == 1, out
    assert "FAIL trust key validity: key 'ops' was NOT valid at the trusted time" in out


def test_simulated_runs_are_refused_by_default(stamped, tsa, tmp_path):
    run, pair = stamped
    code, out = _verify(run, "--trust", str(_trust(tmp_path, pair, tsa, extra="")))
    assert code == 1, out
    assert "FAIL trust simulated:" in out


def test_a_key_not_in_the_trust_policy_fails(stamped, tsa, tmp_path):
    run, pair = stamped
    other = generate_key(tmp_path / "k2", "ed25519", "other")
    code, out = _verify(run, "--key", str(pair.public_path), "--trust", str(_trust(tmp_path, other, tsa)))
    assert code == 1, out
    assert "FAIL trust signer: key" in out and "is not a trusted signer" in out


def _statement(target: str = "https://batch.googleapis.com", **extension: object) -> dict:
    ext = {"target": target, "project": "p-1", "finishedAt": "2026-01-10T00:00:00Z", "policy": {"name": "us-node"}}
    ext.update(extension)
    return {"predicate": {"sovaudit": ext}}


def _policy(tmp_path: Path, pair, body: str):
    path = tmp_path / "t.yaml"
    path.write_text(f"schema: sovaudit/trust-policy/v1\nsigners:\n  - name: old\n    public_key: {pair.public_path}\n"
                    f"    valid_from: 2026-01-01T00:00:00Z\n    valid_until: 2026-02-01T00:00:00Z\n{body}")
    return load_trust_policy(path)


def _rule(outcomes, name):
    (found,) = [o for o in outcomes if o.rule == name]
    return found


def test_a_retired_key_still_verifies_at_its_trusted_time_but_not_without_one(tmp_path):
    pair = generate_key(tmp_path / "keys", "ed25519", "old")
    policy = _policy(tmp_path, pair, "")
    later = datetime(2026, 12, 1, tzinfo=UTC)
    stamped_at = datetime(2026, 1, 10, tzinfo=UTC)
    held = _rule(apply_trust(policy, _statement(), [pair.key_id], stamped_at, now=later), "key validity")
    assert held.ok, held.reason
    missing = _rule(apply_trust(policy, _statement(), [pair.key_id], None, now=later), "key validity")
    assert not missing.ok and "no trusted time to prove when it was signed" in missing.reason
    before = _rule(apply_trust(policy, _statement(), [pair.key_id], datetime(2025, 12, 1, tzinfo=UTC), now=later),
                   "key validity")
    assert not before.ok


def test_max_age_says_which_time_it_used(tmp_path):
    pair = generate_key(tmp_path / "keys", "ed25519", "old")
    policy = _policy(tmp_path, pair, "max_age: 10d\nallow_simulated: true\n")
    now = datetime(2026, 1, 15, tzinfo=UTC)
    by_claim = _rule(apply_trust(policy, _statement(), [pair.key_id], None, now=now), "max_age")
    assert by_claim.ok and "signing time (the signer's claim)" in by_claim.reason
    too_old = _rule(apply_trust(policy, _statement(), [pair.key_id], datetime(2026, 1, 1, tzinfo=UTC), now=now),
                    "max_age")
    assert not too_old.ok and "trusted time" in too_old.reason


def test_required_project_and_policy_pack(tmp_path):
    pair = generate_key(tmp_path / "keys", "ed25519", "old")
    policy = _policy(tmp_path, pair, "project: p-1\npolicy: eu-node\n")
    outcomes = apply_trust(policy, _statement(), [pair.key_id], None, now=datetime(2026, 1, 11, tzinfo=UTC))
    assert _rule(outcomes, "project").ok
    assert not _rule(outcomes, "policy").ok


@pytest.mark.parametrize("statement,simulated", [
    (_statement("http://127.0.0.1:8080"), True),
    (_statement("http://[::1]:8080"), True),
    (_statement("http://localhost:9"), True),
    (_statement("gcp", simulated=True), True),
    ({"predicate": {"simulated": True, "sovaudit": {"target": "gcp"}}}, True),
    (_statement("gcp"), False),
    (_statement("https://127.0.0.1.evil.example"), False),
])
def test_simulated_is_read_both_ways(statement, simulated):
    assert is_simulated(statement) is simulated


def test_malformed_trust_file_names_file_line_and_field(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("schema: sovaudit/trust-policy/v1\nsigners:\n  - name: a\n    keyid: NOTHEX\n"
                    "    valid_from: yesterday\nmax_age: forever\nallow_simulated: 'no'\ncolour: red\n")
    with pytest.raises(TrustPolicyError) as caught:
        load_trust_policy(path)
    text = "\n".join(caught.value.problems)
    assert f"{path}:4: signers[0].keyid:" in text
    assert f"{path}:5: signers[0].valid_from:" in text
    assert f"{path}:6: max_age:" in text
    assert f"{path}:7: allow_simulated:" in text
    assert f"{path}:8: colour: unknown field" in text


@pytest.mark.parametrize("url", ["ftp://tsa.example/", "tsa.example", "file:///etc/passwd", "http://"])
def test_a_tsa_url_that_is_not_http_is_refused(url):
    with pytest.raises(TimestampError, match="not an http"):
        check_tsa_url(url)


def test_an_unreachable_tsa_is_an_error_not_a_silent_unstamped_bundle(tmp_path):
    pair = generate_key(tmp_path / "keys", "ed25519", "ops")
    with pytest.raises(TimestampError, match="could not be reached"):
        write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=load_signing_key(pair.private_path),
                     timestamper=partial(request_timestamp, "http://127.0.0.1:9/tsr", timeout=2))
    assert not list((tmp_path / "out").glob("run-*"))


def test_verify_with_tsa_against_the_simulator_stamps_the_bundle(sim, tsa, tmp_path):
    pair = generate_key(tmp_path / "keys", "ed25519", "ops")
    result = CliRunner().invoke(main, ["verify", "--policy", "us", "--target", sim.url, "--posture-only", "--no-probes",
                                       "--api-deadline", "5", "--out", str(tmp_path / "out"),
                                       "--sign-key", str(pair.private_path), "--tsa", tsa.url])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "out").glob("run-*")
    assert tsa.requests == 1
    code, out = _verify(run, "--key", str(pair.public_path), "--tsa-root", str(tsa.root_pem))
    assert code == 0 and "TRUSTED TIME:" in out, out


def test_verify_with_a_refusing_tsa_writes_no_bundle_and_exits_2(sim, tmp_path):
    pair = generate_key(tmp_path / "keys", "ed25519", "ops")
    result = CliRunner().invoke(main, ["verify", "--policy", "us", "--target", sim.url, "--posture-only", "--no-probes",
                                       "--api-deadline", "5", "--out", str(tmp_path / "out"),
                                       "--sign-key", str(pair.private_path), "--tsa", f"{sim.url}/not-a-tsa"])
    assert result.exit_code == 2, result.output
    assert "no trusted time, so no bundle was written" in result.output
    assert not list((tmp_path / "out").glob("run-*"))
