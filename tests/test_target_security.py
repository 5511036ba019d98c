"""Where the tool's credentials may go: never to a host the environment slipped in, never in clear.

Each refusal is checked through the real command line (a subprocess with the variable set), with a
decoy listening where the variable points: the run must exit 2 naming the variable, and the decoy must
see no connection at all (so no bearer token ever left the machine).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sovaudit.cloud import Target, TargetError, redirecting_environment
from sovaudit.simulator.server import SimServer


class Decoy:
    """A loopback listener that counts connections: the place a redirected client would talk to."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.server.close()


@pytest.fixture
def decoy() -> Iterator[Decoy]:
    listener = Decoy()
    try:
        yield listener
    finally:
        listener.close()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().endswith("_EMULATOR_HOST")}
    return subprocess.run([sys.executable, "-m", "sovaudit", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


REDIRECTS = [
    ("STORAGE_EMULATOR_HOST", "http://127.0.0.1:{port}"),
    ("BIGQUERY_EMULATOR_HOST", "http://127.0.0.1:{port}"),
    ("PUBSUB_EMULATOR_HOST", "127.0.0.1:{port}"),
    ("GOOGLE_CLOUD_UNIVERSE_DOMAIN", "127.0.0.1.nip.io:{port}"),
    ("GCE_METADATA_HOST", "127.0.0.1:{port}"),
]


@pytest.mark.parametrize(("variable", "value"), REDIRECTS)
@pytest.mark.parametrize("command", [
    ("verify", "--policy", "us", "--target", "gcp"),
    ("cleanup", "--policy", "us", "--target", "gcp"),
    ("pipeline", "status", "preprocess-genomes-001", "--policy", "us", "--target", "gcp"),
])
def test_a_redirecting_variable_with_target_gcp_is_exit_2_naming_it(decoy: Decoy, variable: str, value: str,
                                                                     command: tuple[str, ...]) -> None:
    result = run_cli(*command, env={variable: value.format(port=decoy.port)})
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    time.sleep(0.3)
    assert decoy.connections == 0, "a client reached the redirected host"


def test_the_whole_emulator_family_and_endpoint_overrides_are_refused() -> None:
    env = {"SPANNER_EMULATOR_HOST": "x:1", "FIRESTORE_EMULATOR_HOST": "x:1",
           "GOOGLE_CLOUD_STORAGE_API_ENDPOINT": "http://x", "BIGQUERY_API_ENDPOINT": "http://x",
           "GOOGLE_CLOUD_UNIVERSE_DOMAIN": "googleapis.com", "GCE_METADATA_HOST": "metadata.google.internal",
           "GOOGLE_API_USE_MTLS_ENDPOINT": "auto", "HOME": "/root", "STORAGE_EMULATOR_HOST": ""}
    assert redirecting_environment(env) == [
        "BIGQUERY_API_ENDPOINT=http://x", "FIRESTORE_EMULATOR_HOST=x:1",
        "GOOGLE_CLOUD_STORAGE_API_ENDPOINT=http://x", "SPANNER_EMULATOR_HOST=x:1", "STORAGE_EMULATOR_HOST="]
    with pytest.raises(TargetError, match="SPANNER_EMULATOR_HOST"):
        Target.parse("gcp", environ=env)
    # Google's own values, and nothing set, are fine.
    assert Target.parse("gcp", environ={"GOOGLE_CLOUD_UNIVERSE_DOMAIN": "googleapis.com"}).kind == "gcp"
    # The simulator is reached anonymously on loopback: the variables cannot leak a credential there.
    assert Target.parse("http://127.0.0.1:9", environ=env).is_sim


@pytest.mark.parametrize("target", ["http://10.0.0.5:8080", "http://sim.example.org", "http://127.0.0.1@evil.example",
                                    "https://storage.googleapis.com", "ftp://127.0.0.1:21"])
def test_a_url_target_off_loopback_is_refused_before_any_call(target: str) -> None:
    result = run_cli("verify", "--policy", "us", "--target", target, env={})
    assert result.returncode == 2, result.stderr
    assert "--target" in result.stderr


def test_an_https_target_failing_tls_is_exit_2_at_once(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory()  # speaks plain HTTP: a TLS handshake with it fails
    https = sim.url.replace("http://", "https://")
    before = len(sim.state.log_entries)
    started = time.monotonic()
    for command in (("verify", "--policy", "us"), ("cleanup", "--policy", "us")):
        result = run_cli(*command, "--target", https, env={})
        assert result.returncode == 2, result.stderr
        assert "TLS" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60, "a TLS failure must not be retried for minutes"
    assert len(sim.state.log_entries) == before, "a request reached the server"
