"""The one place that constructs Google Cloud clients.

A `Target` says where the clients point: Google itself (Application Default Credentials) or the
embedded simulator over loopback (anonymous credentials, REST transport, `api_endpoint` = its URL).
Everything else in the product asks this module for a client, so there is exactly one code path to
the cloud and tests exercise it unchanged. Client libraries are imported inside each factory because
importing them costs seconds and most commands need only a few.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport.requests import AuthorizedSession

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class TargetError(ValueError):
    """The --target value is neither `gcp` nor a loopback simulator URL, or the environment would send
    the `gcp` clients somewhere other than Google."""


# Environment variables the installed clients (google-cloud-storage, -bigquery, google-api-core,
# google-auth) read to send requests somewhere other than Google's endpoints. Checked in site-packages:
# storage reads STORAGE_EMULATOR_HOST (then talks plain HTTP with our bearer token), bigquery
# BIGQUERY_EMULATOR_HOST, every GAPIC client and api-core GOOGLE_CLOUD_UNIVERSE_DOMAIN (the host becomes
# *.<domain>), google-auth GCE_METADATA_HOST / GCE_METADATA_IP (where the access token itself comes
# from). The *_EMULATOR_HOST family is refused as a whole (pubsub, datastore, firestore, spanner,
# bigtable... read the same convention) and so is any GOOGLE_CLOUD_*_ENDPOINT / *_API_ENDPOINT
# override, read by some client versions: a variable a future client starts honouring must not
# silently redirect the audit. GOOGLE_API_USE_CLIENT_CERTIFICATE and GOOGLE_API_USE_MTLS_ENDPOINT only
# switch to Google's own *.mtls.googleapis.com hosts, so they are allowed.
_REDIRECTING = re.compile(r"^(?:[A-Z0-9_]+_EMULATOR_HOST|GOOGLE_CLOUD_[A-Z0-9_]*ENDPOINT[A-Z0-9_]*"
                          r"|[A-Z0-9_]*_API_ENDPOINT(?:_OVERRIDE)?|CLOUDSDK_API_ENDPOINT_OVERRIDES_[A-Z0-9_]+)$")
# Variables that redirect only when they name something other than Google's own value.
_REDIRECTING_UNLESS = {
    "GOOGLE_CLOUD_UNIVERSE_DOMAIN": {"googleapis.com"},
    "GCE_METADATA_HOST": {"metadata.google.internal", "169.254.169.254"},
    "GCE_METADATA_IP": {"169.254.169.254"},
    "GCE_METADATA_ROOT": {"metadata.google.internal"},
}


def redirecting_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """The environment variables that would make a client talk to a host other than Google's, as
    `NAME=value`, sorted. Set-but-empty counts: a client reading `os.environ.get(NAME)` may still
    take the branch, and refusing is the safe reading."""
    env = os.environ if environ is None else environ
    found = []
    for name, value in env.items():
        upper = name.upper()
        if _REDIRECTING.match(upper) or (upper in _REDIRECTING_UNLESS
                                          and value.strip().lower() not in _REDIRECTING_UNLESS[upper]):
            found.append(f"{name}={value}")
    return sorted(found)


@dataclass(frozen=True)
class Target:
    """Where the Google Cloud clients point."""

    kind: str  # "gcp" | "sim"
    endpoint: str | None = None  # the simulator's base URL when kind == "sim"

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str] | None = None) -> Target:
        value = text.strip()
        if value == "gcp":
            redirects = redirecting_environment(environ)
            if redirects:
                # The clients would honour these over the default endpoints, send the bearer token
                # there (in clear for the emulator variables), and the bundle would still say `gcp`.
                raise TargetError(
                    f"--target gcp: the environment redirects the Google Cloud clients away from Google: "
                    f"{', '.join(redirects)}; unset {'them' if len(redirects) > 1 else 'it'} "
                    "(use --target http://127.0.0.1:PORT for the simulator)")
            return cls("gcp")
        parsed = urlparse(value)
        if parsed.scheme in {"http", "https"} and parsed.hostname:
            if parsed.hostname not in LOOPBACK_HOSTS and f"[{parsed.hostname}]" not in LOOPBACK_HOSTS:
                # Only the simulator is addressed by URL; real Google is `gcp`. Refusing other hosts
                # keeps anonymous credentials from ever being sent somewhere unexpected.
                raise TargetError(
                    f"--target {value!r}: a URL target must be the simulator on loopback "
                    "(http://127.0.0.1:PORT); use 'gcp' for Google Cloud"
                )
            return cls("sim", value.rstrip("/"))
        raise TargetError(f"--target {value!r}: expected 'gcp' or http://127.0.0.1:PORT")

    @property
    def is_sim(self) -> bool:
        return self.kind == "sim"

    def __str__(self) -> str:
        return self.endpoint if self.endpoint else self.kind

    # -- shared pieces -------------------------------------------------------------------------
    def credentials(self) -> Credentials:
        if self.is_sim:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()  # type: ignore[no-untyped-call]
        import google.auth

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        return credentials

    def client_options(self, default_endpoint: str | None = None) -> dict[str, Any]:
        if self.is_sim:
            return {"api_endpoint": self.endpoint}
        return {"api_endpoint": default_endpoint} if default_endpoint else {}

    def gapic_kwargs(self) -> dict[str, Any]:
        """Arguments for a generated (GAPIC) client: always REST, so evidence is REST JSON."""
        return {"transport": "rest", "credentials": self.credentials(), "client_options": self.client_options()}


def principal(target: Target) -> str:
    """Who the run acts as, for the report: the ADC account email, or 'anonymous' on the simulator."""
    if target.is_sim:
        return "anonymous (simulator)"
    creds = target.credentials()
    email = getattr(creds, "service_account_email", None) or getattr(creds, "_account", None)
    return str(email or "application-default-credentials")


# -- client factories (one per API) ------------------------------------------------------------

def orgpolicy(target: Target) -> Any:
    from google.cloud import orgpolicy_v2

    return orgpolicy_v2.OrgPolicyClient(**target.gapic_kwargs())


def batch(target: Target) -> Any:
    from google.cloud import batch_v1

    return batch_v1.BatchServiceClient(**target.gapic_kwargs())


def compute_instances(target: Target) -> Any:
    from google.cloud import compute_v1

    return compute_v1.InstancesClient(**target.gapic_kwargs())


def compute_templates(target: Target) -> Any:
    from google.cloud import compute_v1

    return compute_v1.InstanceTemplatesClient(**target.gapic_kwargs())


def compute_routers(target: Target) -> Any:
    from google.cloud import compute_v1

    return compute_v1.RoutersClient(**target.gapic_kwargs())


def compute_routes(target: Target) -> Any:
    from google.cloud import compute_v1

    return compute_v1.RoutesClient(**target.gapic_kwargs())


def compute_networks(target: Target) -> Any:
    from google.cloud import compute_v1

    return compute_v1.NetworksClient(**target.gapic_kwargs())


def compute_firewalls(target: Target) -> Any:
    from google.cloud import compute_v1

    return compute_v1.FirewallsClient(**target.gapic_kwargs())


def compute_zone_operations(target: Target) -> Any:
    from google.cloud import compute_v1

    return compute_v1.ZoneOperationsClient(**target.gapic_kwargs())


def kms(target: Target) -> Any:
    from google.cloud import kms

    return kms.KeyManagementServiceClient(**target.gapic_kwargs())


def projects(target: Target) -> Any:
    from google.cloud import resourcemanager_v3

    return resourcemanager_v3.ProjectsClient(**target.gapic_kwargs())


def folders(target: Target) -> Any:
    from google.cloud import resourcemanager_v3

    return resourcemanager_v3.FoldersClient(**target.gapic_kwargs())


def organizations(target: Target) -> Any:
    from google.cloud import resourcemanager_v3

    return resourcemanager_v3.OrganizationsClient(**target.gapic_kwargs())


def confidential_computing(target: Target) -> Any:
    from google.cloud import confidentialcomputing_v1

    return confidentialcomputing_v1.ConfidentialComputingClient(**target.gapic_kwargs())


def attestation_keys(target: Target, jwks_uri: str) -> tuple[AuthorizedSession, str]:
    """Where the Confidential Computing token signing keys (a JWKS) are read: the pack's `jwks_uri` on
    Google; on the simulator the same path under its URL (it publishes its own keys there).

    The JWKS is public, and the URI comes from a policy pack: the session is anonymous on every target,
    so the verifier's access token is never sent to whatever host a pack names."""
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession

    if target.is_sim:
        parsed = urlparse(jwks_uri)
        url = f"{target.endpoint}{parsed.path}" + (f"?{parsed.query}" if parsed.query else "")
    else:
        url = jwks_uri
    return AuthorizedSession(AnonymousCredentials()), url  # type: ignore[no-untyped-call]


def storage(target: Target, project: str) -> Any:
    from google.cloud.storage import Client

    return Client(project=project, credentials=target.credentials(),
                      client_options=target.client_options())


def bigquery(target: Target, project: str, location: str | None = None) -> Any:
    from google.cloud import bigquery as bq

    return bq.Client(project=project, credentials=target.credentials(), location=location,
                     client_options=target.client_options())


def logging(target: Target, project: str) -> Any:
    from google.cloud import logging as cloud_logging

    # Logging defaults to gRPC; REST keeps evidence as REST JSON and lets the simulator answer.
    return cloud_logging.Client(project=project, credentials=target.credentials(), _use_grpc=False,
                                client_options=target.client_options())


def assured_workloads(target: Target) -> Any:
    from google.cloud import assuredworkloads_v1

    return assuredworkloads_v1.AssuredWorkloadsServiceClient(**target.gapic_kwargs())


ASSURED_WORKLOADS = "https://assuredworkloads.googleapis.com"


def assured_workloads_session(target: Target) -> tuple[AuthorizedSession, str]:
    """Assured Workloads violations: google-cloud-assured-workloads 2.5 serves GetWorkload over REST but
    raises NotImplementedError for ListViolations/GetViolation on its REST transport (gRPC only), and
    evidence must be REST JSON, so an authorized session and the REST base URL, as for Access Context
    Manager. The workload itself is read with the client above."""
    from google.auth.transport.requests import AuthorizedSession

    base = target.endpoint if target.is_sim else ASSURED_WORKLOADS
    return AuthorizedSession(target.credentials()), str(base)


ACCESS_CONTEXT_MANAGER = "https://accesscontextmanager.googleapis.com"


def access_context_manager(target: Target) -> tuple[AuthorizedSession, str]:
    """Access Context Manager has no released client library: an authorized session and its base URL."""
    from google.auth.transport.requests import AuthorizedSession

    base = target.endpoint if target.is_sim else ACCESS_CONTEXT_MANAGER
    return AuthorizedSession(target.credentials()), str(base)


LOGGING = "https://logging.googleapis.com"


def logging_config(target: Target) -> tuple[AuthorizedSession, str]:
    """Cloud Logging's configuration (sinks, exclusions, log buckets): google-cloud-logging 3.17 ships
    ConfigServiceV2 with gRPC transports only, and evidence must be REST JSON, so an authorized
    session and the REST base URL, as for Access Context Manager."""
    from google.auth.transport.requests import AuthorizedSession

    base = target.endpoint if target.is_sim else LOGGING
    return AuthorizedSession(target.credentials()), str(base)


def http_session_of(client: Any) -> Any:
    """The `requests` session a client sends through, so the recorder can hook its responses."""
    transport = getattr(client, "_transport", None)
    session = getattr(transport, "_session", None)
    if session is not None:
        return session
    return client._http  # google-cloud-core clients (storage, bigquery, logging)
