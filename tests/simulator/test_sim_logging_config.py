"""Cloud Logging routing through the official clients: sinks, exclusions, log buckets and their effect.

The configuration API is driven with google-api-python-client's logging v2 (the discovery document
Google publishes) and google-cloud-logging's own sink calls; the effect is read back with
`entries.list`, as an auditor would: an excluded entry is not stored, `_Required` cannot be excluded,
a sink to another project takes entries out of the node.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.errors import HttpError
from sim_clients import logging, options

from sovaudit.simulator.node import NodeFileError, load_state

PROJECT = "projects/fed-node-us"
REGIONAL_BUCKET = "projects/fed-node-us/locations/us-central1/buckets/node-audit-logs"


def config_client(url: str) -> Any:
    from googleapiclient.discovery import build

    return build("logging", "v2", static_discovery=True, client_options=options(url),
                 credentials=AnonymousCredentials())


def recent(sim: Any, filter_: str, within: timedelta = timedelta(minutes=10)) -> list[Any]:
    since = (datetime.now(UTC) - within).strftime("%Y-%m-%dT%H:%M:%SZ")
    return list(logging(sim.url).list_entries(resource_names=[PROJECT], filter_=f'{filter_} AND timestamp>="{since}"'))


def write_text(sim: Any, log_id: str, text: str) -> None:
    logging(sim.url).logger(log_id).log_text(text)


def texts(sim: Any, log_id: str) -> list[str]:
    """Text entries of one log (the client's first write adds a diagnostic JSON entry of its own)."""
    return [e.payload for e in recent(sim, f'LOG_ID("{log_id}") AND textPayload:*')]


def config_changes(sim: Any, method: str) -> list[Any]:
    return recent(sim, 'LOG_ID("cloudaudit.googleapis.com/activity") AND '
                       f'protoPayload.methodName="google.logging.v2.ConfigServiceV2.{method}"')


def test_the_clean_node_routes_default_to_a_regional_bucket_and_keeps_required_global(sim) -> None:
    client = config_client(sim.url)
    sinks = {s["name"]: s for s in client.projects().sinks().list(parent=PROJECT).execute()["sinks"]}
    assert set(sinks) == {"_Required", "_Default"}
    assert sinks["_Required"]["destination"] == \
        "logging.googleapis.com/projects/fed-node-us/locations/global/buckets/_Required"
    assert 'LOG_ID("cloudaudit.googleapis.com/activity")' in sinks["_Required"]["filter"]
    assert sinks["_Default"]["destination"] == f"logging.googleapis.com/{REGIONAL_BUCKET}"
    assert "disabled" not in sinks["_Default"]   # unset fields are omitted, as on Google
    buckets = client.projects().locations().buckets().list(parent=f"{PROJECT}/locations/-").execute()["buckets"]
    assert {b["name"]: b["lifecycleState"] for b in buckets} == {
        f"{PROJECT}/locations/global/buckets/_Required": "ACTIVE",
        f"{PROJECT}/locations/global/buckets/_Default": "ACTIVE", REGIONAL_BUCKET: "ACTIVE"}
    regional = client.projects().locations().buckets().list(parent=f"{PROJECT}/locations/us-central1").execute()
    assert [b["name"] for b in regional["buckets"]] == [REGIONAL_BUCKET]
    exclusions = client.projects().exclusions().list(parent=PROJECT).execute()["exclusions"]
    assert [e["name"] for e in exclusions] == ["drop-task-debug-lines"]


def test_google_cloud_logging_lists_the_same_sinks(sim) -> None:
    names = [sink.name for sink in logging(sim.url).list_sinks()]
    assert names == ["_Required", "_Default"]


def test_the_required_sink_cannot_be_changed_nor_default_deleted(sim) -> None:
    sinks = config_client(sim.url).projects().sinks()
    with pytest.raises(HttpError) as caught:
        sinks.patch(sinkName=f"{PROJECT}/sinks/_Required", updateMask="disabled", body={"disabled": True}).execute()
    assert caught.value.resp.status == 400 and "_Required" in str(caught.value)
    with pytest.raises(HttpError) as caught:
        sinks.delete(sinkName=f"{PROJECT}/sinks/_Default").execute()
    assert caught.value.resp.status == 400


def test_an_exclusion_drops_later_entries_but_never_admin_activity(sim) -> None:
    exclusions = config_client(sim.url).projects().exclusions()
    write_text(sim, "pipeline-notes", "before the exclusion")
    created = exclusions.create(parent=PROJECT, body={
        "name": "hide-notes", "filter": 'LOG_ID("pipeline-notes") OR LOG_ID("cloudaudit.googleapis.com/activity")'},
    ).execute()
    assert created["name"] == "hide-notes" and created["createTime"]
    write_text(sim, "pipeline-notes", "after the exclusion")
    assert texts(sim, "pipeline-notes") == ["before the exclusion"]
    # The exclusion's own Admin Activity entry is stored: _Required cannot be excluded from.
    [change] = config_changes(sim, "CreateExclusion")
    assert change.payload["resourceName"] == f"{PROJECT}/exclusions/hide-notes"
    assert change.payload["request"]["exclusion"]["filter"].startswith('LOG_ID("pipeline-notes")')


def test_a_disabled_exclusion_drops_nothing(sim) -> None:
    exclusions = config_client(sim.url).projects().exclusions()
    exclusions.create(parent=PROJECT, body={"name": "hide-notes", "filter": 'LOG_ID("pipeline-notes")'}).execute()
    exclusions.patch(name=f"{PROJECT}/exclusions/hide-notes", updateMask="disabled", body={"disabled": True}).execute()
    write_text(sim, "pipeline-notes", "kept")
    assert texts(sim, "pipeline-notes") == ["kept"]
    assert len(config_changes(sim, "UpdateExclusion")) == 1


def test_disabling_default_leaves_only_what_required_keeps(sim) -> None:
    sinks = config_client(sim.url).projects().sinks()
    updated = sinks.patch(sinkName=f"{PROJECT}/sinks/_Default", updateMask="disabled", body={"disabled": True}).execute()
    assert updated["disabled"] is True
    write_text(sim, "cloudaudit.googleapis.com%2Fdata_access", "a data access entry")
    write_text(sim, "cloudaudit.googleapis.com%2Fpolicy", "a policy denied entry")
    assert recent(sim, 'LOG_ID("cloudaudit.googleapis.com/data_access") OR LOG_ID("cloudaudit.googleapis.com/policy")'
                       ' AND textPayload:"entry"') == []
    assert len(config_changes(sim, "UpdateSink")) == 1


def test_a_sink_to_another_project_takes_entries_out_of_the_node(sim) -> None:
    sinks = config_client(sim.url).projects().sinks()
    destination = "logging.googleapis.com/projects/central-audit-991/locations/us-central1/buckets/siem"
    created = sinks.create(parent=PROJECT, uniqueWriterIdentity=True, body={
        "name": "siem-export", "destination": destination, "filter": 'LOG_ID("pipeline-notes")'}).execute()
    assert created["writerIdentity"].startswith("serviceAccount:p314159265358-")
    write_text(sim, "pipeline-notes", "copied out")
    exported = sim.state.extras["logging_exports"][destination]
    assert [e["textPayload"] for e in exported if "textPayload" in e] == ["copied out"]
    # The node still stores its own copy through _Default; the other project's is not the node's to read.
    assert texts(sim, "pipeline-notes") == ["copied out"]
    with pytest.raises(Exception, match="403|permission"):
        list(logging(sim.url).list_entries(resource_names=["projects/central-audit-991"],
                                           filter_='timestamp>="2026-01-01T00:00:00Z"'))


def test_default_repointed_to_another_project_stores_nothing_in_the_node(sim) -> None:
    sinks = config_client(sim.url).projects().sinks()
    sinks.update(sinkName=f"{PROJECT}/sinks/_Default", body={
        "destination": "logging.googleapis.com/projects/central-audit-991", "filter": ""}).execute()
    write_text(sim, "pipeline-notes", "gone")
    assert texts(sim, "pipeline-notes") == []
    assert [e.get("textPayload") for e in sim.state.extras["logging_exports"][
        "logging.googleapis.com/projects/central-audit-991"] if "textPayload" in e] == ["gone"]


def test_log_buckets_keep_their_location_and_a_locked_retention(sim) -> None:
    buckets = config_client(sim.url).projects().locations().buckets()
    created = buckets.create(parent=f"{PROJECT}/locations/europe-west4", bucketId="eu-copy", body={}).execute()
    assert created["name"] == f"{PROJECT}/locations/europe-west4/buckets/eu-copy"
    assert created["retentionDays"] == 30 and created["lifecycleState"] == "ACTIVE"
    got = buckets.get(name=created["name"]).execute()
    assert got == created
    with pytest.raises(HttpError) as caught:
        buckets.patch(name=REGIONAL_BUCKET, updateMask="retentionDays", body={"retentionDays": 1}).execute()
    assert caught.value.resp.status == 400 and "locked" in str(caught.value)
    assert len(config_changes(sim, "CreateBucket")) == 1


def test_an_excluded_foreign_write_is_not_in_the_node_log(sim_factory, tmp_path) -> None:
    """The effect SEC-08 guards: with the exclusion the write is simply not there to be found."""
    write = 'protoPayload.methodName="storage.objects.create" AND resource.labels.bucket_name="fed-node-us-raw-vcfs-backup"'
    day = timedelta(days=1)
    import yaml

    from sovaudit.simulator.node import SCENARIO_DIR

    staged = yaml.safe_load((SCENARIO_DIR / "logs-exclusion-hides-egress.yaml").read_text())
    del staged["node"]["logging"]   # the same write into the node's look-alike bucket, nothing excluded
    (tmp_path / "unexcluded.yaml").write_text(yaml.safe_dump({**staged, "name": "unexcluded"}))
    seen = recent(sim_factory(scenarios=[tmp_path / "unexcluded.yaml"]), write, day)
    hidden = recent(sim_factory(scenarios=["logs-exclusion-hides-egress"]), write, day)
    assert len(seen) == 1 and hidden == []


def test_a_node_file_cannot_modify_required_or_carry_a_bad_filter(tmp_path) -> None:
    text = (load_state.__globals__["NODE_DIR"] / "us.yaml").read_text()
    broken = tmp_path / "node.yaml"
    broken.write_text(text.replace("  exclusions:\n    drop-task-debug-lines:",
                                   "    _Required: {disabled: true}\n  exclusions:\n    drop-task-debug-lines:"))
    with pytest.raises(NodeFileError, match=r"logging.sinks._Required.*cannot be modified"):
        load_state(broken)
    broken.write_text(text.replace('severity<=DEBUG', 'severity<=DEBUG AND ('))
    with pytest.raises(NodeFileError, match=r"logging.exclusions.drop-task-debug-lines.filter.*not a valid"):
        load_state(broken)


def test_an_exclusion_reverted_after_the_run_leaves_only_its_admin_activity(sim_factory) -> None:
    sim = sim_factory(scenarios=["logs-exclusion-reverted-after-run"])
    day = timedelta(days=1)
    write = 'protoPayload.methodName="storage.objects.create" AND resource.labels.bucket_name="fed-node-us-raw-vcfs-backup"'
    assert recent(sim, write, day) == []
    assert config_client(sim.url).projects().exclusions().list(parent=PROJECT).execute()["exclusions"][0]["name"] \
        == "drop-task-debug-lines"   # today's config is clean
    changes = recent(sim, 'protoPayload.methodName:"ConfigServiceV2"', day)
    assert [c.payload["methodName"].rsplit(".", 1)[1] for c in changes] == ["CreateExclusion", "DeleteExclusion"]
    seed = sim.state.extras["seed"]
    assert changes[0].timestamp < datetime.fromisoformat(seed.window_start.replace("Z", "+00:00"))
    assert changes[1].timestamp > datetime.fromisoformat(seed.window_end.replace("Z", "+00:00"))


def test_config_resources_use_only_fields_of_the_discovery_document(sim_factory) -> None:
    """Every field the simulator serves exists in logging.v2's LogSink / LogExclusion / LogBucket."""
    import json
    from pathlib import Path

    import googleapiclient

    document = json.loads((Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" /
                           "logging.v2.json").read_text())
    schemas = document["schemas"]
    sim = sim_factory(scenarios=["logs-sink-to-foreign-project", "logs-exclusion-storage-writes-only",
                                 "logs-bucket-multi-region-copy"])
    client = config_client(sim.url).projects()
    listed = {"LogSink": client.sinks().list(parent=PROJECT).execute()["sinks"],
              "LogExclusion": client.exclusions().list(parent=PROJECT).execute()["exclusions"],
              "LogBucket": client.locations().buckets().list(parent=f"{PROJECT}/locations/-").execute()["buckets"]}
    for schema, items in listed.items():
        assert items
        for item in items:
            assert set(item) <= set(schemas[schema]["properties"]), (schema, item)
            assert all(value not in ("", False, [], {}) for value in item.values()), item   # proto3 defaults omitted
    default = next(s for s in listed["LogSink"] if s["name"] == "_Default")
    assert set(default["exclusions"][0]) <= set(schemas["LogExclusion"]["properties"])
