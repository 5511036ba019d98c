"""The simulator's Confidential Computing API, through the official client, and the task that calls it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.cloud import confidentialcomputing_v1 as cc

from sovaudit import cloud
from sovaudit.audit import attestation_token as jwt
from sovaudit.pipeline import attest
from sovaudit.policies.pack import DEFAULT_ATTESTATION_JWKS_URI
from sovaudit.simulator.server import SimServer

AUDIENCE = "https://sovaudit.dev/attestation"


def client(sim: SimServer) -> Any:
    return cloud.confidential_computing(cloud.Target.parse(sim.url))


def a_vm(sim: SimServer) -> tuple[str, str]:
    """A Confidential VM of the seeded run (the node also has plain VMs)."""
    (zone, _), vm = next((key, vm) for key, vm in sim.state.instances.items()
                         if (vm.get("confidentialInstanceConfig") or {}).get("enableConfidentialCompute"))
    return zone, str(vm["id"])


def verify(sim: SimServer, *, nonce: list[str], instance: str | None = None, audience: str = AUDIENCE,
           challenge: str | None = None) -> Any:
    api = client(sim)
    name = challenge or api.create_challenge(parent="projects/fed-node-us/locations/us-central1", challenge={}).name
    zone, instance_id = a_vm(sim)
    request = cc.VerifyAttestationRequest(
        challenge=name, tpm_attestation=cc.TpmAttestation(),
        token_options=cc.TokenOptions(audience=audience, nonce=nonce, token_type=cc.TokenType.TOKEN_TYPE_OIDC),
        instance=instance or f"projects/{sim.state.project_number}/zones/{zone}/instances/{instance_id}")
    return api.verify_attestation(request=request)


def published_keys(sim: SimServer) -> dict[str, Any]:
    discovery = requests.get(f"{sim.url}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == "https://confidentialcomputing.googleapis.com"
    return dict(requests.get(discovery["jwks_uri"], timeout=10).json())


def test_a_token_for_a_vm_is_signed_by_the_published_key_and_carries_the_nonce(sim: SimServer) -> None:
    nonce = attest.attestation_nonce("run-1", 3)
    token = jwt.parse(verify(sim, nonce=[nonce]).oidc_claims_token)
    jwt.verify(token, jwt.rsa_keys(published_keys(sim)))
    zone, instance_id = a_vm(sim)
    assert token.claims["eat_nonce"] == nonce and token.claims["aud"] == AUDIENCE
    assert token.claims["submods"]["gce"] == {**token.claims["submods"]["gce"], "zone": zone,
                                              "instance_id": instance_id, "project_id": "fed-node-us"}
    assert token.claims["hwmodel"] == "GCP_AMD_SEV" and token.claims["exp"] - token.claims["iat"] == 3600


def test_the_jwks_sits_where_the_pack_default_points_under_the_simulators_url(sim: SimServer) -> None:
    session, url = cloud.attestation_keys(cloud.Target.parse(sim.url), DEFAULT_ATTESTATION_JWKS_URI)
    assert url.startswith(sim.url) and session.get(url, timeout=10).json() == published_keys(sim)


def test_a_challenge_is_consumed_on_use(sim: SimServer) -> None:
    name = client(sim).create_challenge(parent="projects/fed-node-us/locations/us-central1", challenge={}).name
    verify(sim, nonce=["0123456789abcdef"], challenge=name)
    with pytest.raises(exceptions.BadRequest, match="already been used"):
        verify(sim, nonce=["0123456789abcdef"], challenge=name)


@pytest.mark.parametrize("nonce", ["short", "x" * 75])
def test_nonces_outside_10_to_74_bytes_are_refused(sim: SimServer, nonce: str) -> None:
    with pytest.raises(exceptions.BadRequest, match="between 10 and 74 bytes"):
        verify(sim, nonce=[nonce])


def test_nonces_need_an_audience(sim: SimServer) -> None:
    with pytest.raises(exceptions.BadRequest, match="audience is required"):
        verify(sim, nonce=["0123456789abcdef"], audience="")


def test_an_instance_the_project_does_not_have_is_refused(sim: SimServer) -> None:
    with pytest.raises(exceptions.BadRequest, match="not found"):
        verify(sim, nonce=["0123456789abcdef"],
               instance=f"projects/{sim.state.project_number}/zones/us-central1-a/instances/1")


def test_another_projects_challenge_is_refused(sim: SimServer) -> None:
    with pytest.raises(exceptions.Forbidden):
        client(sim).create_challenge(parent="projects/someone-else/locations/us-central1", challenge={})


def test_the_task_gets_a_token_bound_to_its_run_and_index(sim: SimServer) -> None:
    zone, instance_id = a_vm(sim)
    env = {attest.REGION_ENV: "us-central1", attest.AUDIENCE_ENV: AUDIENCE,
           "SOVAUDIT_SIM_PROJECT_NUMBER": sim.state.project_number, "SOVAUDIT_SIM_ZONE": zone,
           "SOVAUDIT_SIM_INSTANCE_ID": instance_id}
    token = attest.request_token(target=cloud.Target.parse(sim.url), project="fed-node-us", run_id="run-7",
                                 task_index=2, env=env)
    claims = jwt.parse(token).claims
    assert claims["eat_nonce"] == attest.attestation_nonce("run-7", 2)
    assert claims["submods"]["gce"]["instance_id"] == instance_id


def test_the_task_reports_why_when_it_does_not_know_its_vm(sim: SimServer) -> None:
    env = {attest.REGION_ENV: "us-central1", attest.AUDIENCE_ENV: AUDIENCE}
    with pytest.raises(attest.AttestationError, match="which VM"):
        attest.request_token(target=cloud.Target.parse(sim.url), project="fed-node-us", run_id="r", task_index=0,
                             env=env)


def test_a_seeded_run_with_attestation_stores_a_token_in_every_manifests_metadata(
        sim: SimServer, sim_factory: Callable[..., SimServer]) -> None:
    def manifests(server: SimServer) -> dict[str, Any]:
        return {name: obj for (_, name), obj in server.state.objects.items() if name.startswith("manifests/")}

    # The us node's recorded job ran without attestation (its pack leaves it off): no token anywhere.
    assert manifests(sim) and not any("attestation_token" in o.metadata.get("metadata", {})
                                      for o in manifests(sim).values())
    eu = sim_factory(node="eu")
    variables = next(iter(eu.state.jobs.values()))["taskGroups"][0]["taskSpec"]["environment"]["variables"]
    assert variables["SOVAUDIT_ATTEST"] == "1"
    for name, obj in manifests(eu).items():
        claims = jwt.parse(obj.metadata["metadata"]["attestation_token"]).claims
        manifest = json.loads(obj.data)
        assert claims["eat_nonce"] == attest.attestation_nonce(manifest["run_id"], manifest["task_index"]), name
        assert manifest["run_id"] == variables["SOVAUDIT_RUN_ID"]


def test_the_jwks_is_fetched_without_credentials_wherever_the_pack_points() -> None:
    """The URI comes from a policy pack: the verifier's access token must never travel with it."""
    from google.auth.credentials import AnonymousCredentials

    session, url = cloud.attestation_keys(cloud.Target("gcp"), "https://keys.example.org/jwks")
    assert url == "https://keys.example.org/jwks"
    assert isinstance(session.credentials, AnonymousCredentials)
