"""Node and scenario files are validated: a bad one stops `sim serve` with exit 2 naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sovaudit.simulator.commands import sim as sim_cli
from sovaudit.simulator.node import NODE_DIR, NodeFileError, load_node_file, load_state


def _node(tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load((NODE_DIR / "us.yaml").read_text())
    edit(doc)
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _serve(*args: str):
    return CliRunner().invoke(sim_cli, ["serve", "--port", "0", *args])


def test_shipped_nodes_match_the_architecture_node_facts() -> None:
    us, _ = load_node_file("us")
    eu, _ = load_node_file("eu")
    assert (us["project"]["id"], us["project"]["number"], us["region"]) == ("fed-node-us", "314159265358", "us-central1")
    assert (eu["project"]["id"], eu["project"]["number"], eu["region"]) == ("fed-node-eu", "271828182845", "europe-west4")
    assert eu["zones"] == ["europe-west4-a", "europe-west4-b", "europe-west4-c"]
    assert eu["perimeter"]["name"] == "accessPolicies/555000222/servicePerimeters/fed_node_eu"
    assert eu["org_policies"]["gcp.resourceLocations"]["rules"][0]["values"]["allowedValues"] == [
        "in:europe-west4-locations"]
    for doc in (us, eu):
        template = doc["instance_template"]
        assert template["name"] == "sev-n2d-batch"
        assert template["properties"]["machineType"] == "n2d-standard-4"
        assert template["properties"]["confidentialInstanceConfig"]["confidentialInstanceType"] == "SEV"
        assert "accessConfigs" not in template["properties"]["networkInterfaces"][0]
        assert template["properties"]["serviceAccounts"][0]["email"] == doc["service_account"]


def test_bad_node_field_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    path = _node(tmp_path, lambda d: d["buckets"]["raw"].update(location=12))
    result = _serve("--node", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output
    assert "field 'buckets.raw.location'" in result.output
    assert "Traceback" not in result.output


def test_every_problem_of_a_node_file_is_reported_at_once(tmp_path: Path) -> None:
    def edit(doc):
        doc["zones"] = ["us-east1-b"]
        del doc["service_account"]
        doc["perimeter"]["mode"] = "sometimes"
    with pytest.raises(NodeFileError) as caught:
        load_state(_node(tmp_path, edit))
    fields = {field for field, _ in caught.value.problems}
    assert {"service_account", "perimeter.mode"} <= fields
    with pytest.raises(NodeFileError, match=r"zones\[0\].*not a zone of the region"):
        load_state(_node(tmp_path, lambda d: d.update(zones=["us-east1-b"])))


def test_unknown_node_field_is_named(tmp_path: Path) -> None:
    with pytest.raises(NodeFileError, match="field 'projekt': is not a known field"):
        load_state(_node(tmp_path, lambda d: d.update(projekt={})))


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("project:\n  id: [unclosed\n")
    result = _serve("--node", str(path))
    assert result.exit_code == 2
    assert f"{path}: field 'line " in result.output


def test_bad_scenario_field_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\ndescription: d\nfails: [SEC-2]\nseed: {vm_overides: []}\n")
    result = _serve("--scenario", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output
    assert "field 'fails[0]'" in result.output
    assert "field 'seed.vm_overides'" in result.output


def test_scenario_that_breaks_the_node_is_refused_naming_the_patched_field(tmp_path: Path) -> None:
    path = tmp_path / "broken-bucket.yaml"
    path.write_text("name: broken-bucket\ndescription: d\nfails: [SOV-04]\n"
                    "node: {buckets: {raw: {locationType: continental}}}\n")
    with pytest.raises(NodeFileError) as caught:
        load_state("us", [path])
    assert caught.value.file == str(path)
    assert caught.value.field == "node.buckets.raw.locationType"


def test_scenario_name_must_match_its_file(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text("name: other\ndescription: d\nfails: []\n")
    with pytest.raises(NodeFileError, match="must equal the file name"):
        load_state("us", [path])


def test_unknown_scenario_name_lists_the_known_ones() -> None:
    result = _serve("--scenario", "no-such-scenario")
    assert result.exit_code == 2
    assert "vm-public-ip" in result.output


def test_a_busy_port_exits_2_with_a_clear_message() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(sim_cli, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port} is in use; choose another with --port" in result.output
    assert "Either identify" not in result.output  # Werkzeug's own lines are not shown
