"""SEC-01 judges the whole perimeter: resources, rules by content, bridges, access levels, a pending spec."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import AllowedBridge, resolve_policy

NUMBER = "314159265358"
PARTNER = "projects/112233445566"
POLICY = "accessPolicies/555000111"
EGRESS_TO_PARTNER: dict[str, Any] = {
    "title": "share-qc-summaries",
    "egressFrom": {"identities": ["serviceAccount:batch-runner@fed-node-us.iam.gserviceaccount.com"]},
    "egressTo": {"resources": [PARTNER], "operations": [
        {"serviceName": "storage.googleapis.com", "methodSelectors": [{"method": "google.storage.objects.create"}]}]},
}
INGRESS_ANYWHERE: dict[str, Any] = {
    "title": "open", "ingressFrom": {"identityType": "ANY_IDENTITY", "sources": [{"accessLevel": "*"}]},
    "ingressTo": {"resources": ["*"], "operations": [{"serviceName": "storage.googleapis.com",
                                                     "methodSelectors": [{"method": "*"}]}]},
}
OFFICE: dict[str, Any] = {"name": f"{POLICY}/accessLevels/office", "title": "office",
                          "basic": {"conditions": [{"ipSubnetworks": ["198.51.100.0/24"]}]}}


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def perimeter(node: NodeEvidence) -> dict[str, Any]:
    return node.body("acm.perimeters")["servicePerimeters"][0]


def failures(node: NodeEvidence) -> list[str]:
    result = node.run("SEC-01")
    return [f.message for f in result.findings if f.outcome == Outcome.FAIL]


def with_perimeter(node: NodeEvidence, **fields: Any) -> None:
    """Widen the pack's allow-lists (the pack is frozen: replace it)."""
    node.pack = dataclasses.replace(node.pack, perimeter=dataclasses.replace(node.pack.perimeter, **fields))


def test_sec01_fails_naming_an_outside_project_in_the_perimeter(node: NodeEvidence) -> None:
    perimeter(node)["status"]["resources"].append(PARTNER)
    assert [m for m in failures(node) if PARTNER in m and "extra_resources" in m]


def test_sec01_passes_an_outside_project_the_pack_lists(node: NodeEvidence) -> None:
    perimeter(node)["status"]["resources"].append(PARTNER)
    with_perimeter(node, extra_resources=(PARTNER,))
    assert node.run("SEC-01").outcome == Outcome.PASS


def test_sec01_fails_naming_what_an_egress_rule_to_any_resource_opens(node: NodeEvidence) -> None:
    perimeter(node)["status"]["egressPolicies"] = [{"title": "debug", "egressFrom": {"identityType": "ANY_IDENTITY"},
                                                    "egressTo": {"resources": ["*"], "operations": [{"serviceName": "*"}]}}]
    (message,) = failures(node)
    assert "egress rule 'debug' the pack does not list" in message
    assert "identities ANY_IDENTITY" in message and "resources *" in message and "operations *[no method]" in message


def test_sec01_passes_a_listed_egress_rule_whatever_its_field_order_or_defaults(node: NodeEvidence) -> None:
    seen = copy.deepcopy(EGRESS_TO_PARTNER)
    seen["egressFrom"]["identityType"] = "IDENTITY_TYPE_UNSPECIFIED"   # a default Google may send
    seen["title"] = "renamed"                                           # titles are labels, not content
    perimeter(node)["status"]["egressPolicies"] = [seen]
    with_perimeter(node, allowed_egress=(EGRESS_TO_PARTNER,))
    assert node.run("SEC-01").outcome == Outcome.PASS


def test_sec01_fails_a_listed_title_with_a_widened_body(node: NodeEvidence) -> None:
    widened = copy.deepcopy(EGRESS_TO_PARTNER)
    widened["egressTo"]["resources"] = ["*"]
    perimeter(node)["status"]["egressPolicies"] = [widened]
    with_perimeter(node, allowed_egress=(EGRESS_TO_PARTNER,))
    (message,) = failures(node)
    assert "'share-qc-summaries' whose body differs from the pack's rule of that title" in message
    assert "resources *" in message


def test_sec01_fails_an_ingress_rule_from_anywhere(node: NodeEvidence) -> None:
    perimeter(node)["status"]["ingressPolicies"] = [INGRESS_ANYWHERE]
    (message,) = failures(node)
    assert "ingress rule 'open'" in message and "sources *" in message and "ANY_IDENTITY" in message


def test_sec01_fails_naming_the_other_members_of_a_bridge(node: NodeEvidence) -> None:
    bridge = {"name": f"{POLICY}/servicePerimeters/bridge", "title": "bridge", "perimeterType": "PERIMETER_TYPE_BRIDGE",
              "status": {"resources": [f"projects/{NUMBER}", PARTNER]}}
    node.body("acm.perimeters")["servicePerimeters"].append(bridge)
    result = node.run("SEC-01")
    (finding,) = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert finding.resource == bridge["name"] and PARTNER in finding.message


def test_sec01_passes_a_listed_bridge_and_fails_it_once_it_holds_one_more_project(node: NodeEvidence) -> None:
    bridge = {"name": f"{POLICY}/servicePerimeters/bridge", "perimeterType": 1,   # enum as a number
              "status": {"resources": [f"projects/{NUMBER}", PARTNER]}}
    node.body("acm.perimeters")["servicePerimeters"].append(bridge)
    with_perimeter(node, allowed_bridges=(AllowedBridge(bridge["name"], (f"projects/{NUMBER}", PARTNER)),))
    assert node.run("SEC-01").outcome == Outcome.PASS
    bridge["status"]["resources"].append("projects/777")
    (message,) = failures(node)
    assert "projects the pack does not list for it: projects/777" in message


def test_sec01_ignores_a_bridge_that_does_not_hold_the_node(node: NodeEvidence) -> None:
    node.body("acm.perimeters")["servicePerimeters"].append(
        {"name": f"{POLICY}/servicePerimeters/others", "perimeterType": "PERIMETER_TYPE_BRIDGE",
         "status": {"resources": [PARTNER, "projects/777"]}})
    assert node.run("SEC-01").outcome == Outcome.PASS


def test_sec01_fails_an_unlisted_access_level_naming_its_conditions(node: NodeEvidence) -> None:
    perimeter(node)["status"]["accessLevels"] = [OFFICE["name"]]
    node.set("acm.access_levels", {"accessLevels": [OFFICE]})
    (message,) = failures(node)
    assert "access level accessPolicies/555000111/accessLevels/office" in message and "198.51.100.0/24" in message


def test_sec01_fails_a_listed_access_level_whose_conditions_were_widened(node: NodeEvidence) -> None:
    perimeter(node)["status"]["accessLevels"] = [OFFICE["name"]]
    widened = copy.deepcopy(OFFICE)
    widened["basic"]["conditions"][0]["ipSubnetworks"] = ["0.0.0.0/0"]
    node.set("acm.access_levels", {"accessLevels": [widened]})
    with_perimeter(node, allowed_access_levels=(OFFICE,))
    (message,) = failures(node)
    assert "conditions differ from the pack's" in message and "0.0.0.0/0" in message
    node.set("acm.access_levels", {"accessLevels": [OFFICE]})
    assert node.run("SEC-01").outcome == Outcome.PASS


def test_sec01_errors_when_access_levels_it_relies_on_could_not_be_read(node: NodeEvidence) -> None:
    perimeter(node)["status"]["accessLevels"] = [OFFICE["name"]]
    with_perimeter(node, allowed_access_levels=(OFFICE,))
    result = node.run("SEC-01")   # acm.access_levels was never collected
    assert result.outcome == Outcome.ERROR and "accessLevels.list" in result.findings[0].message


def test_sec01_fails_when_vpc_accessible_services_are_not_restricted(node: NodeEvidence) -> None:
    perimeter(node)["status"]["vpcAccessibleServices"] = {"enableRestriction": False}
    assert ["enableRestriction" in m for m in failures(node)] == [True]
    perimeter(node)["status"]["vpcAccessibleServices"] = {"enableRestriction": True,
                                                          "allowedServices": ["RESTRICTED-SERVICES", "pubsub.googleapis.com"]}
    assert ["pubsub.googleapis.com" in m for m in failures(node)] == [True]


def test_sec01_fails_a_pending_spec_that_would_open_more(node: NodeEvidence) -> None:
    spec = copy.deepcopy(perimeter(node)["status"])
    spec["resources"].append(PARTNER)
    perimeter(node).update(spec=spec, useExplicitDryRunSpec=True)
    (message,) = failures(node)
    assert message.startswith("its pending dry-run spec (one `commit` from enforced) holds projects/112233445566")


def test_sec01_passes_a_pending_spec_that_opens_nothing_and_says_what_differs(node: NodeEvidence) -> None:
    spec = copy.deepcopy(perimeter(node)["status"])
    spec["restrictedServices"].append("pubsub.googleapis.com")
    perimeter(node).update(spec=spec, useExplicitDryRunSpec=True)
    result = node.run("SEC-01")
    assert result.outcome == Outcome.PASS
    assert "pending dry-run spec differs from the enforced status (restrictedServices adds " \
           '"pubsub.googleapis.com")' in result.findings[0].message


def test_sec01_fails_when_the_named_perimeter_is_a_bridge(node: NodeEvidence) -> None:
    perimeter(node)["perimeterType"] = "PERIMETER_TYPE_BRIDGE"
    assert any("not a regular perimeter" in m for m in failures(node))


def test_sec01_fails_when_another_regular_perimeter_holds_the_node_network(node: NodeEvidence) -> None:
    network = "//compute.googleapis.com/projects/fed-node-us/global/networks/fed-node-us-multiomics-vpc"
    other = {"name": f"{POLICY}/servicePerimeters/partner", "status": {"resources": [PARTNER, network]}}
    node.body("acm.perimeters")["servicePerimeters"].append(other)
    result = node.run("SEC-01")
    (finding,) = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert finding.resource == other["name"] and network in finding.message


def test_sec01_fails_a_pending_spec_that_drops_the_node(node: NodeEvidence) -> None:
    spec = copy.deepcopy(perimeter(node)["status"])
    spec["resources"] = [PARTNER]
    perimeter(node).update(spec=spec, useExplicitDryRunSpec=True)
    messages = failures(node)
    assert "no longer holds projects/314159265358" in messages[0]


def test_sec01_follows_required_access_levels(node: NodeEvidence) -> None:
    base = {"name": f"{POLICY}/accessLevels/base", "basic": {"conditions": [{"ipSubnetworks": ["198.51.100.0/24"]}]}}
    office = {"name": OFFICE["name"], "basic": {"conditions": [{"requiredAccessLevels": [base["name"]]}]}}
    perimeter(node)["status"]["accessLevels"] = [office["name"]]
    with_perimeter(node, allowed_access_levels=(office, base))
    node.set("acm.access_levels", {"accessLevels": [office, base]})
    assert node.run("SEC-01").outcome == Outcome.PASS
    widened = copy.deepcopy(base)
    widened["basic"]["conditions"][0]["ipSubnetworks"] = ["0.0.0.0/0"]
    node.set("acm.access_levels", {"accessLevels": [office, widened]})
    (message,) = failures(node)
    assert "accessLevels/base whose conditions differ" in message
