"""The HTML report renders in a real browser (headless Chromium), with no script and no network.

Skipped where `chromium` is not installed; .ci/run installs Debian's chromium so CI runs it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from report_samples import make_evidence, make_result

from sovaudit.reports.bundle import write_bundle

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH")
def test_report_html_renders_in_headless_chromium(tmp_path):
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {})
    shot = tmp_path / "report.png"
    completed = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", (run / "report.html").as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    assert shot.exists(), completed.stderr.decode(errors="replace")[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)
    # A blank or error page compresses to a few kilobytes; the report has text, tables and colour.
    assert len(data) > 40_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH")
def test_report_html_prints_to_pdf(tmp_path):
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {})
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}", (run / "report.html").as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = data.count(b"/Type /Page\n") + data.count(b"/Type /Page\r") + data.count(b"/Type /Page ")
    assert 1 <= pages <= 8  # the sample fits on a few pages: nothing is lost or exploded by print CSS
