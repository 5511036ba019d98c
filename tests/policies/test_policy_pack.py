"""Policy packs: the shipped packs match the node facts; every problem of a bad pack is named with file and line."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovaudit.policies.commands import policy
from sovaudit.policies.pack import (
    PolicyError,
    PolicyPackInvalid,
    load_policy,
    resolve_policy,
    validate_policy,
)

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad" / "policies"


def problems(name: str) -> list[str]:
    return [str(e) for e in validate_policy(BAD / name)]


def test_us_pack_matches_the_node_facts() -> None:
    pack = resolve_policy("us")
    assert pack.project == "fed-node-us" and pack.organization == "organizations/161803398874"
    assert pack.region == "us-central1"
    assert pack.jurisdiction.allowed_policy_values == ("in:us-central1-locations",)
    assert pack.jurisdiction.probe_regions == ("europe-west4", "us-east1")
    assert (pack.network.network, pack.network.subnetwork) == ("fed-node-us-multiomics-vpc", "fed-node-us-compute-subnet")
    assert pack.service_account == "batch-runner@fed-node-us.iam.gserviceaccount.com"
    assert pack.buckets.allowed == ("fed-node-us-raw-vcfs", "fed-node-us-processed")
    assert pack.kms.key_ring == "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics"
    assert pack.perimeter.name == "accessPolicies/555000111/servicePerimeters/fed_node_us"
    assert pack.pipeline.instance_template == "sev-n2d-batch" and pack.confidential.required_type == "SEV"
    assert pack.dataset == "hospital_data" and pack.waivers == ()


def test_eu_pack_matches_the_node_facts() -> None:
    pack = resolve_policy("eu")
    assert pack.project == "fed-node-eu" and pack.region == "europe-west4"
    assert pack.jurisdiction.allowed_policy_values == ("in:europe-west4-locations",)
    assert pack.jurisdiction.probe_regions == ("us-central1", "europe-west2")
    assert pack.perimeter.name == "accessPolicies/555000222/servicePerimeters/fed_node_eu"
    assert pack.buckets.input == "fed-node-eu-raw-vcfs" and pack.buckets.output == "fed-node-eu-processed"
    assert pack.kms.key_ring == "projects/fed-node-eu/locations/europe-west4/keyRings/fed-node-eu-genomics"


def test_pack_digest_is_the_sha256_of_the_file_bytes() -> None:
    pack = resolve_policy("us")
    assert pack.sha256 == hashlib.sha256(Path(pack.path).read_bytes()).hexdigest()


def test_jurisdiction_admits_zones_and_any_spelling_but_not_other_regions() -> None:
    pack = resolve_policy("us")
    assert pack.allows_location("US-CENTRAL1") and pack.allows_location("zones/us-central1-f")
    assert pack.allows_location("ZONE:us-central1-b")
    assert not pack.allows_location("us-east1") and not pack.allows_location("us")


def test_waivers_load_with_their_expiry(tmp_path: Path) -> None:
    text = (ROOT / "policies" / "us-node.yaml").read_text().replace(
        "waivers: []", 'waivers:\n  - {control: SOV-04, resource: "projects/_/buckets/*", owner: sec@example.org, '
                       "justification: migration, expires: 2027-03-31}")
    (tmp_path / "p.yaml").write_text(text)
    waiver = load_policy(tmp_path / "p.yaml").waivers[0]
    assert (waiver.control, waiver.expires) == ("SOV-04", date(2027, 3, 31))


def test_an_empty_waiver_owner_is_called_empty_not_a_wrong_type(tmp_path: Path) -> None:
    text = (ROOT / "policies" / "us-node.yaml").read_text().replace(
        "waivers: []", "waivers:\n  - {control: SOV-04, resource: x, owner: '', justification: ' ', expires: 2027-03-31}")
    (tmp_path / "p.yaml").write_text(text)
    found = [str(e) for e in validate_policy(tmp_path / "p.yaml")]
    assert any("waivers[0].owner: must not be empty" in f for f in found), found
    assert any("waivers[0].justification: must not be empty" in f for f in found), found
    assert not any("expected a string" in f for f in found), found


def test_every_problem_is_reported_with_file_line_and_field() -> None:
    found = problems("many-problems.yaml")
    file = str(BAD / "many-problems.yaml")
    expected = [
        f"{file}:8: jurisdiction.allowed_regions[1]: 'US Central' does not look like a region",
        f"{file}:9: jurisdiction.allowed_policy_values[1]: unknown value group 'in:mars-locations'",
        f"{file}:10: jurisdiction.probe_regions[1]: probe region 'us-central1' is inside the allowed jurisdiction",
        f"{file}:15: perimeter.restricted_services: expected a list of strings",
        f"{file}:17: buckets.allowed: the output bucket 'fed-node-us-processed' is not in the allow-list",
        f"{file}:21: pipeline.lables: unknown field (did you mean 'labels'?)",
        f"{file}:22: severity_overrides.SEC-99: unknown control id 'SEC-99'",
        f"{file}:22: severity_overrides.SEC-04: unknown severity 'urgent'",
        f"{file}:24: waivers[0].expires: required field is missing",
        f"{file}:28: waivers[1].control: unknown control id 'SOV-77'",
        f"{file}:32: waivers[1].expires: malformed date '2027-02-30'",
    ]
    assert len(found) == len(expected)
    for line in expected:
        assert any(f.startswith(line) for f in found), line


def test_a_yaml_syntax_error_names_its_line() -> None:
    [error] = problems("syntax-error.yaml")
    assert error.startswith(f"{BAD / 'syntax-error.yaml'}:6: <document>: YAML syntax error")


def test_missing_required_fields_are_each_reported() -> None:
    found = problems("missing-fields.yaml")
    fields = [f.split(": ")[1] for f in found]
    assert fields == ["network", "perimeter", "service_account", "buckets", "dataset", "kms", "confidential",
                      "pipeline"]


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    assert "must be a mapping" in problems("not-a-mapping.yaml")[0]


def test_load_policy_raises_one_error_carrying_all_problems() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(BAD / "many-problems.yaml")
    assert isinstance(caught.value, PolicyPackInvalid) and len(caught.value.errors) == 11
    assert caught.value.line == 8 and caught.value.field == "jurisdiction.allowed_regions[1]"
    assert str(caught.value).count("\n") == 10


def test_a_missing_file_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="cannot read the pack"):
        resolve_policy("/nonexistent/pack.yaml")


def test_policy_error_str_format() -> None:
    assert str(PolicyError("p.yaml", 3, "kms.location", "unknown", "use a region")) == \
        "p.yaml:3: kms.location: unknown (use a region)"


def test_cli_validate_prints_ok_or_every_error_and_exits_2() -> None:
    runner = CliRunner()
    ok = runner.invoke(policy, ["validate", "us", "eu"])
    assert ok.exit_code == 0 and ok.output.count(": OK") == 2
    bad = runner.invoke(policy, ["validate", "us", str(BAD / "many-problems.yaml")])
    assert bad.exit_code == 2
    assert ": OK" in bad.output and bad.output.count("many-problems.yaml:") == 11


def test_optional_sections_may_be_left_empty(tmp_path: Path) -> None:
    text = (ROOT / "policies" / "us-node.yaml").read_text()
    text = text.replace("severity_overrides: {}", "severity_overrides:").replace("waivers: []", "waivers:")
    (tmp_path / "p.yaml").write_text(text)
    pack = load_policy(tmp_path / "p.yaml")
    assert pack.waivers == () and pack.severity_overrides == {}


def test_shipped_packs_name_their_readers_and_access_allow_lists() -> None:
    for name, project in (("us", "fed-node-us"), ("eu", "fed-node-eu")):
        pack = resolve_policy(name)
        assert pack.readers == (f"serviceAccount:batch-runner@{project}.iam.gserviceaccount.com",)
        assert pack.access.allowed_domains == ("example.org",)
        assert "group:genomics-platform-admins@example.org" in pack.access.allowed_principals


def test_a_pack_without_readers_loads_with_none_so_sec07_can_refuse_to_judge(tmp_path: Path) -> None:
    lines = (ROOT / "policies" / "us-node.yaml").read_text().splitlines()
    (tmp_path / "p.yaml").write_text("\n".join(line for line in lines if not line.startswith("readers:")) + "\n")
    assert load_policy(tmp_path / "p.yaml").readers is None


def test_readers_and_access_members_must_carry_their_kind_and_name_their_line(tmp_path: Path) -> None:
    text = (ROOT / "policies" / "us-node.yaml").read_text()
    text = text.replace("readers: [serviceAccount:", "readers: [batch-runner-without-prefix@x.org, serviceAccount:")
    text = text.replace("allowed_domains: [example.org]", "allowed_domains: [not a domain]")
    (tmp_path / "p.yaml").write_text(text)
    found = [str(e) for e in validate_policy(tmp_path / "p.yaml")]
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("readers:"))
    assert any(f"p.yaml:{line}: readers[0]: 'batch-runner-without-prefix@x.org' is not an IAM member" in f
               for f in found), found
    assert any("access.allowed_domains[0]: 'not a domain' is not a domain name" in f for f in found), found


PERIMETER_ALLOW_LISTS = """\
  extra_resources: [projects/112233445566, //compute.googleapis.com/projects/fed-node-us/global/networks/other]
  allowed_ingress: []
  allowed_egress:
    - title: share-qc-summaries
      egressFrom: {identities: ["serviceAccount:batch-runner@fed-node-us.iam.gserviceaccount.com"]}
      egressTo:
        resources: [projects/112233445566]
        operations: [{serviceName: storage.googleapis.com, methodSelectors: [{method: google.storage.objects.create}]}]
  allowed_bridges:
    - {name: accessPolicies/555000111/servicePerimeters/bridge, resources: [projects/314159265358, projects/112233445566]}
  allowed_access_levels:
    - {name: accessPolicies/555000111/accessLevels/office, basic: {conditions: [{ipSubnetworks: [198.51.100.0/24]}]}}
"""


def _with_perimeter_lists(tmp_path: Path, lists: str) -> Path:
    text = (ROOT / "policies" / "us-node.yaml").read_text()
    start = text.index("  extra_resources:")
    end = text.index("service_account:")
    (tmp_path / "p.yaml").write_text(text[:start] + lists + text[end:])
    return tmp_path / "p.yaml"


def test_shipped_packs_allow_no_perimeter_opening() -> None:
    for name in ("us", "eu"):
        perimeter = resolve_policy(name).perimeter
        assert (perimeter.extra_resources, perimeter.allowed_ingress, perimeter.allowed_egress,
                perimeter.allowed_bridges, perimeter.allowed_access_levels) == ((), (), (), (), ())


def test_perimeter_allow_lists_load_as_full_bodies(tmp_path: Path) -> None:
    perimeter = load_policy(_with_perimeter_lists(tmp_path, PERIMETER_ALLOW_LISTS)).perimeter
    assert perimeter.extra_resources[0] == "projects/112233445566"
    assert perimeter.allowed_egress[0]["egressTo"]["operations"][0]["methodSelectors"] == [
        {"method": "google.storage.objects.create"}]
    assert perimeter.allowed_bridges[0].resources == ("projects/314159265358", "projects/112233445566")
    assert perimeter.allowed_access_levels[0]["basic"]["conditions"][0]["ipSubnetworks"] == ["198.51.100.0/24"]


def test_bad_perimeter_allow_lists_are_named_with_line_and_field(tmp_path: Path) -> None:
    bad = """\
  extra_resources: [fed-node-partner]
  allowed_ingress:
    - title: only-a-title
  allowed_egress:
    - {title: t, egressFrom: {}, egressTo: {}, egressFromm: {}}
  allowed_bridges:
    - {name: accessPolicies/1/servicePerimeters/bridge, resources: [folders/12]}
  allowed_access_levels:
    - office
"""
    path = _with_perimeter_lists(tmp_path, bad)
    found = [str(e) for e in validate_policy(path)]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("  extra_resources:"))
    expected = [
        f"{path}:{line}: perimeter.extra_resources[0]: 'fed-node-partner' is not a perimeter resource",
        f"{path}:{line + 2}: perimeter.allowed_ingress[0]: ingressFrom and ingressTo missing",
        f"{path}:{line + 4}: perimeter.allowed_egress[0]: unknown field(s) egressFromm in a rule",
        f"{path}:{line + 6}: perimeter.allowed_bridges[0].name: 'accessPolicies/1/servicePerimeters/bridge' is not a "
        "perimeter of accessPolicies/555000111",
        f"{path}:{line + 6}: perimeter.allowed_bridges[0].resources[0]: 'folders/12' is not projects/NUMBER",
        f"{path}:{line + 8}: perimeter.allowed_access_levels[0]: expected a mapping, got 'office'",
    ]
    for text in expected:
        assert any(f.startswith(text) for f in found), (text, found)
    assert len(found) == len(expected), found


def test_an_empty_restricted_services_list_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "policies" / "us-node.yaml").read_text()
    start = text.index("  restricted_services: [")
    end = text.index("\n", start)
    (tmp_path / "p.yaml").write_text(text[:start] + "  restricted_services: []" + text[end:])
    found = [str(e) for e in validate_policy(tmp_path / "p.yaml")]
    assert len(found) == 1 and "perimeter.restricted_services: must not be empty" in found[0], found


# ---- network.egress (SEC-09) ------------------------------------------------------------------------

EGRESS_LINE = "  egress: {firewall: deny-all, allowed_destinations: [199.36.153.4/30]}\n"


def _with_egress(tmp_path: Path, replacement: str) -> Path:
    text = (ROOT / "policies" / "us-node.yaml").read_text()
    assert EGRESS_LINE in text
    path = tmp_path / "p.yaml"
    path.write_text(text.replace(EGRESS_LINE, replacement))
    return path


def test_shipped_packs_require_deny_all_egress_to_the_restricted_vip_only() -> None:
    for name in ("us", "eu"):
        egress = resolve_policy(name).network.egress
        assert (egress.firewall, egress.allowed_destinations) == ("deny-all", ("199.36.153.4/30",))


def test_a_pack_without_egress_gets_the_strict_default(tmp_path: Path) -> None:
    egress = load_policy(_with_egress(tmp_path, "")).network.egress
    assert (egress.firewall, egress.allowed_destinations) == ("deny-all", ("199.36.153.4/30",))


def test_egress_not_required_loads(tmp_path: Path) -> None:
    pack = load_policy(_with_egress(tmp_path, "  egress: {firewall: not-required}\n"))
    assert pack.network.egress.firewall == "not-required"


def test_bad_egress_fields_are_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = _with_egress(tmp_path, "  egress:\n    firewall: deny-some\n"
                                  "    allowed_destinations: [199.36.153.4/30, not-a-cidr, 0.0.0.0/0]\n")
    found = [str(e) for e in validate_policy(path)]
    text = path.read_text().splitlines()
    line = next(i for i, row in enumerate(text, 1) if "deny-some" in row)
    assert any(f.startswith(f"{path}:{line}: network.egress.firewall: unknown egress firewall requirement "
                            "'deny-some'") for f in found), found
    assert any(f.startswith(f"{path}:{line + 1}: network.egress.allowed_destinations[1]: 'not-a-cidr' is not a CIDR")
               for f in found), found
    assert any("allowed_destinations[2]: '0.0.0.0/0' is the whole address space" in f for f in found), found
    assert len(found) == 3


def test_allowed_peerings_must_be_network_names(tmp_path: Path) -> None:
    good = load_policy(_with_egress(tmp_path, "  egress: {firewall: deny-all, allowed_peerings: "
                                              "[projects/p/global/networks/n]}\n"))
    assert good.network.egress.allowed_peerings == ("projects/p/global/networks/n",)
    assert resolve_policy("us").network.egress.allowed_peerings == ()
    bad = _with_egress(tmp_path, "  egress: {firewall: deny-all, allowed_peerings: [partner-vpc]}\n")
    assert any("network.egress.allowed_peerings[0]: 'partner-vpc' is not a network name" in str(e)
               for e in validate_policy(bad))


# ---- confidential.in_guest_attestation (CC-05) ---------------------------------------------------

def _with_attestation(tmp_path: Path, block: str) -> Path:
    text = (ROOT / "policies" / "us-node.yaml").read_text()
    old = "confidential: {required_type: SEV, machine_series: [n2d, c2d, c3d]}"
    assert old in text
    text = text.replace(old, "confidential:\n  required_type: SEV\n  machine_series: [n2d, c2d, c3d]\n"
                             f"  in_guest_attestation: {block}")
    (tmp_path / "p.yaml").write_text(text)
    return tmp_path / "p.yaml"


def test_in_guest_attestation_is_off_unless_a_pack_turns_it_on(tmp_path: Path) -> None:
    assert resolve_policy("us").confidential.in_guest_attestation.enabled is False
    assert resolve_policy("eu").confidential.in_guest_attestation.enabled is True
    pack = load_policy(_with_attestation(tmp_path, "{enabled: true, audience: https://auditor.example.org}"))
    attestation = pack.confidential.in_guest_attestation
    assert attestation.enabled and attestation.audience == "https://auditor.example.org"
    assert attestation.jwks_uri.startswith("https://www.googleapis.com/service_accounts/v1/metadata/jwk/")


@pytest.mark.parametrize(("block", "words"), [
    ('{enabled: "yes"}', "expected a boolean"),
    ("{enabled: 1}", "expected a boolean"),
    ("{audience: x}", "enabled"),
    ("{enabled: true, jwks_uri: http://keys.example.org/jwks}", "must be an https:// URL"),
    ("{enabled: true, nonce: fixed}", "nonce"),
])
def test_in_guest_attestation_problems_name_the_field(tmp_path: Path, block: str, words: str) -> None:
    found = [str(e) for e in validate_policy(_with_attestation(tmp_path, block))]
    assert any("confidential.in_guest_attestation" in p and words in p for p in found), found
