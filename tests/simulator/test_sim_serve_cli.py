"""`sovaudit sim serve` answers the official clients on the port it prints, and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from sim_clients import orgpolicy


def test_sim_serve_prints_its_url_and_answers_the_org_policy_client() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sovaudit", "sim", "serve", "--port", "0", "--node", "eu", "--job-tasks", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.poll() is not None else url
        policy = orgpolicy(url).get_effective_policy(name="projects/fed-node-eu/policies/gcp.resourceLocations")
        assert list(policy.spec.rules[0].values.allowed_values) == ["in:europe-west4-locations"]
    finally:
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=10)[1]
    # Stopped by a signal: exit 3 and one line, like every interrupted command (sovaudit/interrupts.py).
    assert process.returncode == 3, stderr
    assert "interrupted by SIGTERM: the simulator stopped" in stderr
    assert "Traceback" not in stderr
