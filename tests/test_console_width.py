"""Console tables fit the terminal they are drawn on (issue 13 item 10): COLUMNS or the real width,
never a fixed 120 columns that an 80-column terminal wraps into broken borders."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from sovaudit.audit.commands import print_summary
from sovaudit.cli import main
from tests.reports.report_samples import make_result


def long_result() -> dict:
    document = make_result()
    control = document["controls"][0]
    # A Google error quoted in full, with a long unbroken resource name: the worst case for a narrow table.
    control["findings"][0]["message"] = ("refused: projects/fed-node-us/locations/europe-west4/jobs/"
                                         "sovaudit-probe-20261207t130215z-d5fbec-europe-west4 " * 6)
    return document


@pytest.mark.parametrize("columns", [80, 60])
def test_the_summary_table_fits_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    document = long_result()
    print_summary(document, stream=out)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= columns, out.getvalue()
    for control in document["controls"]:
        assert any(control["id"] in line for line in lines)  # ids never wrap away
    # The quoted error is cut with an ellipsis, not shown in full over dozens of lines.
    assert "…" in out.getvalue()


def test_a_wide_terminal_gets_a_wide_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    print_summary(long_result(), stream=out)
    assert max(len(line) for line in out.getvalue().splitlines()) > 120


def test_the_control_catalogue_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["controls", "list"])
    assert result.exit_code == 0
    assert max(len(line) for line in result.output.splitlines()) <= 80
