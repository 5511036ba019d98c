"""`policy validate` warns about expired, expiring and blanket waivers; `--strict` makes them errors."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovaudit.policies.commands import policy
from sovaudit.policies.pack import load_policy, resolve_policy
from sovaudit.policies.waiver_lint import is_blanket, waiver_warnings

SPECIFIC = "projects/_/buckets/fed-node-us-raw-vcfs"


def _pack_with(tmp_path: Path, *waivers: tuple[str, str, date]) -> Path:
    """The shipped us pack with these (control, resource, expires) waivers, one field per line."""
    shipped = Path(resolve_policy("us").path).read_text(encoding="utf-8")
    lines = ["waivers:"]
    for control, resource, expires in waivers:
        lines += [f"  - control: {control}", f"    resource: \"{resource}\"", "    owner: dpo@example.org",
                  "    justification: tracked in CHG-1", f"    expires: {expires.isoformat()}"]
    text = "\n".join(line if not line.startswith("waivers:") else "\n".join(lines)
                     for line in shipped.splitlines()) + "\n"
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize("resource", ["*", "**", "projects/*/**", "projects/_/buckets/*", "*/*",
                                      "//storage.googleapis.com/**", "projects/fed-node-us/zones/*/instances/*"])
def test_blanket_globs_are_recognised(resource: str) -> None:
    assert is_blanket(resource, "fed-node-us")


@pytest.mark.parametrize("resource", [SPECIFIC, "projects/fed-node-us/zones/*/instances/*-group0-2-*",
                                      "projects/_/buckets/fed-node-us-*", "projects/other/buckets/b",
                                      "projects"])
def test_specific_globs_are_not_blanket(resource: str) -> None:
    assert not is_blanket(resource, "fed-node-us")


def test_each_warning_names_file_line_and_field(tmp_path: Path) -> None:
    today = date(2026, 12, 7)
    path = _pack_with(tmp_path, ("SOV-04", SPECIFIC, date(2026, 6, 30)),
                      ("SEC-02", SPECIFIC, date(2026, 12, 20)),
                      ("SOV-04", "projects/*/**", date(2099, 12, 31)),
                      ("SOV-04", SPECIFIC, today + timedelta(days=31)))
    found = [str(w) for w in waiver_warnings(load_policy(path), today)]
    assert found[0].startswith(f"{path}:{_line_of(path, '2026-06-30')}: waivers[0].expires: ")
    assert "expired on 2026-06-30" in found[0]
    assert found[1].startswith(f"{path}:{_line_of(path, '2026-12-20')}: waivers[1].expires: ")
    assert "expires on 2026-12-20 (in 13 days)" in found[1]
    assert found[2].startswith(f"{path}:{_line_of(path, 'projects/*/**')}: waivers[2].resource: blanket")
    assert len(found) == 3   # 31 days away and specific: nothing to say


def test_expiring_boundary_is_thirty_days(tmp_path: Path) -> None:
    today = date(2026, 12, 7)
    path = _pack_with(tmp_path, ("SOV-04", SPECIFIC, today + timedelta(days=30)),
                      ("SOV-04", SPECIFIC, today))
    found = [str(w) for w in waiver_warnings(load_policy(path), today)]
    assert len(found) == 2 and "(in 30 days)" in found[0] and "(in 0 days)" in found[1]


def test_shipped_packs_have_no_warnings() -> None:
    assert waiver_warnings(resolve_policy("us"), date(2026, 12, 7)) == []


def test_cli_warns_on_stderr_exit_0_and_strict_exits_2(tmp_path: Path) -> None:
    path = _pack_with(tmp_path, ("SOV-04", "*", date(2000, 1, 1)))
    runner = CliRunner()
    loose = runner.invoke(policy, ["validate", str(path)])
    assert loose.exit_code == 0, loose.output
    assert f"{path}: OK" in loose.stdout
    warnings = loose.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith(f"warning: {path}:") for w in warnings)
    assert "waivers[0].expires" in warnings[0] and "waivers[0].resource" in warnings[1]

    strict = runner.invoke(policy, ["validate", "--strict", str(path)])
    assert strict.exit_code == 2
    assert f"{path}: OK" not in strict.stdout
    assert [w.replace("warning:", "error:", 1) for w in warnings] == strict.stderr.splitlines()

    clean = runner.invoke(policy, ["validate", "--strict", "us"])
    assert clean.exit_code == 0 and clean.stderr == ""


def test_existing_errors_unchanged_under_strict(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: sovaudit/v1\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(policy, ["validate", str(bad)]).stdout == \
        runner.invoke(policy, ["validate", "--strict", str(bad)]).stdout
