"""Org Policy v2 list-constraint inheritance (reference gcp-escape-routes §6.3), rule by rule.

Each row is a hierarchy from the organization (first) down to the project (last), one `spec` per
level (None: no policy there), and what must be in force at the project.
"""

from __future__ import annotations

from typing import Any

import pytest

from sovaudit.audit.orgpolicy_merge import EffectiveList, merge_list

E12: dict[str, Any] = {"rules": [{"values": {"allowedValues": ["E1", "E2"]}}]}
ALL = EffectiveList(allow_all=True, deny_all=False)
NONE = EffectiveList(allow_all=False, deny_all=True)

CASES: list[tuple[str, list[dict[str, Any] | None], EffectiveList]] = [
    ("no policy anywhere: the constraint default (ALLOW)", [None, None, None], ALL),
    ("a policy set only at the org reaches the project", [E12, None, None],
     EffectiveList(False, False, ("E1", "E2"))),
    ("inheritFromParent false (v1 Example 1): the child is a new root",
     [E12, {"rules": [{"values": {"allowedValues": ["E3", "E4"]}}], "inheritFromParent": False}],
     EffectiveList(False, False, ("E3", "E4"))),
    ("inheritFromParent unset behaves as false (the v2 default)",
     [E12, {"rules": [{"values": {"allowedValues": ["E3"]}}]}], EffectiveList(False, False, ("E3",))),
    ("inheritFromParent true (v1 Example 2): values combine",
     [E12, {"rules": [{"values": {"allowedValues": ["E3", "E4"]}}], "inheritFromParent": True}],
     EffectiveList(False, False, ("E1", "E2", "E3", "E4"))),
    ("inheriting through a folder without a policy", [E12, None, {"rules": [{"values": {"allowedValues": ["E3"]}}],
                                                                  "inheritFromParent": True}],
     EffectiveList(False, False, ("E1", "E2", "E3"))),
    ("a wider folder root, inherited by a project that keeps its own list",
     [E12, {"rules": [{"values": {"allowedValues": ["E1", "E9"]}}]},
      {"rules": [{"values": {"allowedValues": ["E1"]}}], "inheritFromParent": True}],
     EffectiveList(False, False, ("E1", "E9"))),
    ("denied values are kept beside allowed ones when inheriting (denied beats allowed)",
     [E12, {"rules": [{"values": {"deniedValues": ["E1"]}}], "inheritFromParent": True}],
     EffectiveList(False, False, ("E1", "E2"), ("E1",))),
    ("reset restores the constraint default, ignoring the parents (v1 Example 4)",
     [E12, {"reset": True}], ALL),
    ("a child inheriting from a reset level inherits the default",
     [E12, {"reset": True}, {"rules": [{"values": {"allowedValues": ["E1"]}}], "inheritFromParent": True}], ALL),
    ("a new root under a reset level is its own list",
     [E12, {"reset": True}, {"rules": [{"values": {"allowedValues": ["E1"]}}]}], EffectiveList(False, False, ("E1",))),
    ("allowAll at the child wins over the parent's list (v1 Example 6)",
     [E12, {"rules": [{"allowAll": True}], "inheritFromParent": True}], ALL),
    ("allowAll at a folder, inherited by a project's list, stays allow all",
     [E12, {"rules": [{"allowAll": True}]}, {"rules": [{"values": {"allowedValues": ["E1"]}}],
                                             "inheritFromParent": True}], ALL),
    ("denyAll at the child admits nothing (v1 Example 7)", [E12, {"rules": [{"denyAll": True}]}], NONE),
    ("a list inheriting from denyAll is its own list", [{"rules": [{"denyAll": True}]},
                                                        {"rules": [{"values": {"allowedValues": ["E1"]}}],
                                                         "inheritFromParent": True}],
     EffectiveList(False, False, ("E1",))),
    ("a spec with neither rules nor reset passes the parent's through",
     [E12, {"rules": [], "inheritFromParent": False}], EffectiveList(False, False, ("E1", "E2"))),
    ("rules of one level OR together; a conditional rule counts as if its condition held",
     [{"rules": [{"values": {"allowedValues": ["E1"]}},
                 {"values": {"allowedValues": ["E5"]}, "condition": {"expression": "resource.matchTag('o/env', 'x')"}}]}],
     EffectiveList(False, False, ("E1", "E5"))),
]


@pytest.mark.parametrize(("chain", "expected"), [(c, e) for _, c, e in CASES], ids=[name for name, _, _ in CASES])
def test_merge_follows_the_documented_inheritance(chain: list[dict[str, Any] | None], expected: EffectiveList) -> None:
    assert merge_list(chain) == expected


def test_a_deny_default_constraint_without_policies_admits_nothing() -> None:
    assert merge_list([None, None], default_allow=False) == NONE


@pytest.mark.parametrize(("effective", "rules"), [
    (ALL, [{"allowAll": True}]),
    (NONE, [{"denyAll": True}]),
    (EffectiveList(False, False, ("E1",), ("E2",)), [{"values": {"allowedValues": ["E1"], "deniedValues": ["E2"]}}]),
    (EffectiveList(True, False, (), ("E2",)), [{"values": {"deniedValues": ["E2"]}}]),
])
def test_the_merged_policy_serialises_as_one_rule(effective: EffectiveList, rules: list[dict[str, Any]]) -> None:
    assert effective.rules() == rules
