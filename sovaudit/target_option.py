"""The `--target` option, shared by every command that reaches the cloud.

One parser and one credentials check, so `verify`, `cleanup` and the pipeline commands answer a bad
target or missing credentials the same way: exit 2 with how to fix it, before any API call.
"""

from __future__ import annotations

import click

from sovaudit.cloud import Target, TargetError


def parse_target(text: str, option: str = "--target") -> Target:
    try:
        return Target.parse(text)
    except TargetError as error:
        # Target.parse speaks of --target; a command that takes the endpoint under another name (run-local's
        # --load) must name the option the user typed.
        raise click.BadParameter(str(error).replace("--target", option), param_hint=option) from error


def require_credentials(target: Target, option: str = "--target") -> None:
    """Against Google, find Application Default Credentials before any call: without them every call
    fails and the run would end as a column of ERRORs or a traceback (a CI gate would read exit 1 as a
    failed control) instead of a clear exit 2 saying how to log in."""
    if target.is_sim:
        return
    from google.auth.exceptions import GoogleAuthError

    try:
        target.credentials()
    except GoogleAuthError as error:
        click.echo(f"{option} gcp: no usable Application Default Credentials: {error}\n"
                   "  log in with `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
                   "to a service account key file (see docs/permissions.md for the roles it needs)", err=True)
        raise SystemExit(2) from error


def require_listening(target: Target, option: str = "--target") -> None:
    """Against the simulator, check that something listens before the first call: a wrong port (or a
    `sim serve` never started) otherwise spends the whole retry deadline on every API, minutes, and
    ends as a column of ERRORs instead of a clear exit 2. `option` is the option the user gave the
    endpoint with (`--load` for run-local), so the message names what they typed."""
    if not target.is_sim or not target.endpoint:
        return
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(target.endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=2.0) as connection:
            if parsed.scheme == "https":
                _require_tls(target.endpoint, connection, parsed.hostname or "127.0.0.1", option)
            return
    except ConnectionRefusedError as error:
        click.echo(f"{option} {target.endpoint}: nothing is listening there (connection refused); start the "
                   f"simulator with `sovaudit sim serve --port {port}` or fix the port", err=True)
        raise SystemExit(2) from error
    except OSError:
        return  # slow or odd, but not known dead: let the calls and their retries decide


def _require_tls(endpoint: str, connection: object, hostname: str, option: str) -> None:
    """An https:// target must present a certificate the clients will accept. Otherwise every call
    fails the same handshake and is retried until the deadline (minutes) to end as a column of
    ERRORs; a certificate problem is bad input, so exit 2 at once with the TLS error."""
    import socket
    import ssl

    assert isinstance(connection, socket.socket)
    context = ssl.create_default_context()
    try:
        with context.wrap_socket(connection, server_hostname=hostname):
            return
    except (ssl.SSLError, ssl.CertificateError) as error:
        click.echo(f"{option} {endpoint}: the TLS handshake failed ({error}); the clients would refuse it on "
                   "every call. Fix the certificate, or use the simulator's plain http://127.0.0.1:PORT", err=True)
        raise SystemExit(2) from error
