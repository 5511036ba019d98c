"""Google's own access as the simulator serves it, through the official clients: Key Access
Justifications policies on the CMEK keys, Access Transparency entries, and KMS uses with a justification."""

from __future__ import annotations

from google.cloud import kms as kms_types
from sim_clients import kms, logging

RING = "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics"
PROJECT = ["projects/fed-node-us"]
WINDOW = 'timestamp>="2000-01-01T00:00:00Z"'
AT_LOG = 'logName="projects/fed-node-us/logs/cloudaudit.googleapis.com%2Faccess_transparency"'
KMS_USES = ('logName="projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fdata_access" AND '
            'protoPayload.serviceName="cloudkms.googleapis.com"')
Reason = kms_types.AccessReason


def test_shipped_cmek_keys_carry_a_justifications_policy_the_client_reads(sim_shared) -> None:
    key = kms(sim_shared.url).get_crypto_key(name=f"{RING}/cryptoKeys/gcs-raw")
    assert list(key.key_access_justifications_policy.allowed_access_reasons) == [
        Reason.CUSTOMER_INITIATED_ACCESS, Reason.GOOGLE_INITIATED_SYSTEM_OPERATION]
    signer = kms(sim_shared.url).get_crypto_key(name=f"{RING}/cryptoKeys/attestation")
    assert "key_access_justifications_policy" not in signer


def test_a_policy_allowing_nothing_is_answered_as_an_empty_object_and_a_removed_one_is_absent(sim_factory) -> None:
    sim = sim_factory(scenarios=["kms-key-policy-allows-nothing", "kms-key-no-justification-policy"])
    assert sim.state.crypto_keys[f"{RING}/cryptoKeys/gcs-processed"]["keyAccessJustificationsPolicy"] == {}
    client = kms(sim.url)
    empty = client.get_crypto_key(name=f"{RING}/cryptoKeys/gcs-processed")
    assert "key_access_justifications_policy" in empty and not empty.key_access_justifications_policy.allowed_access_reasons
    assert "key_access_justifications_policy" not in client.get_crypto_key(name=f"{RING}/cryptoKeys/gcs-raw")


def test_access_transparency_entries_are_json_payloads_on_the_project_filterable_by_country(sim_factory) -> None:
    sim = sim_factory(scenarios=["staff-access-outside-country"])
    client = logging(sim.url)
    [entry] = list(client.list_entries(resource_names=PROJECT, filter_=f"{AT_LOG} AND {WINDOW}"))
    assert entry.resource.type == "project" and entry.resource.labels == {"project_id": "314159265358"}
    assert entry.payload["@type"] == "type.googleapis.com/google.cloud.audit.TransparencyLog"
    assert entry.payload["location"]["principalPhysicalLocationCountry"] == "IN"
    assert entry.payload["reason"] == [{"type": "CUSTOMER_INITIATED_SUPPORT", "detail": "Case number: 48151623"}]
    found = list(client.list_entries(resource_names=PROJECT, filter_=(
        f'{AT_LOG} AND jsonPayload.location.principalPhysicalLocationCountry="IN" AND {WINDOW}')))
    assert len(found) == 1


def test_kms_uses_carry_the_justification_and_are_filtered_by_it(sim_factory) -> None:
    sim = sim_factory(scenarios=["kms-use-allowed-justification"])
    client = logging(sim.url)
    uses = list(client.list_entries(resource_names=PROJECT, filter_=f"{KMS_USES} AND {WINDOW}"))
    assert [u.payload["metadata"]["entries"]["key_access_justification"]["reason"] for u in uses] == [
        "CUSTOMER_INITIATED_ACCESS", "GOOGLE_INITIATED_SYSTEM_OPERATION"]
    meta = uses[0].payload["metadata"]["entries"]["key_access_justification_policy_metadata"]
    assert meta["customer_configured_policy_enforced"] == "true"   # a string, as Google prints it
    narrowed = list(client.list_entries(resource_names=PROJECT, filter_=(
        f'{KMS_USES} AND NOT protoPayload.metadata.entries.key_access_justification.reason='
        f'"CUSTOMER_INITIATED_ACCESS" AND {WINDOW}')))
    assert len(narrowed) == 1


def test_kms_uses_are_not_logged_when_kms_data_access_logging_is_off(sim_factory) -> None:
    sim = sim_factory(scenarios=["kms-data-access-logs-off"])
    assert list(logging(sim.url).list_entries(resource_names=PROJECT, filter_=f"{KMS_USES} AND {WINDOW}")) == []
