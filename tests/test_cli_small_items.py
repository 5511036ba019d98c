"""Issue 13 item 10: a busy port is one clear line, and `verify --evidence` refuses --target instead of
silently ignoring it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovaudit.cli import main


def test_sim_serve_on_a_busy_port_says_so_in_one_line_and_exits_2() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "sovaudit", "sim", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    # Werkzeug's own lines ("Address already in use", "Either identify and stop that program") are not shown.
    assert done.stderr.splitlines() == [
        f"error: port {port} is in use; choose another with --port (--port 0 picks a free one)"]


@pytest.mark.parametrize("extra", [["--target", "http://127.0.0.1:8080"], ["--target", "gcp"],
                                   ["--api-deadline", "5"]])
def test_verify_evidence_refuses_options_that_would_call_the_cloud(tmp_path: Path, extra: list[str]) -> None:
    result = CliRunner().invoke(main, ["verify", "--policy", "us", "--evidence", str(tmp_path), *extra])
    assert result.exit_code == 2
    assert "--evidence re-evaluates a recorded bundle offline and calls no API" in result.output


def test_verify_evidence_without_target_still_reaches_the_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["verify", "--policy", "us", "--evidence", str(tmp_path)])
    assert result.exit_code == 2
    assert "calls no API" not in result.output and "manifest" in result.output
