"""The pack's `access_transparency:` (SOV-07) and `key_access_justifications:` (SOV-08) sections."""

from __future__ import annotations

from pathlib import Path

from google.cloud import kms_v1

from sovaudit.policies.pack import load_policy, resolve_policy, validate_policy
from sovaudit.policies.staff_access import KAJ_REASONS

ROOT = Path(__file__).resolve().parents[2]
US = (ROOT / "policies" / "us-node.yaml").read_text()
SHIPPED_SECTIONS = US[US.index("# SOV-07: Access Transparency"):US.index("confidential:")]
EU_MEMBER_STATES = {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
                    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"}


def pack_with(tmp_path: Path, sections: str) -> Path:
    path = tmp_path / "pack.yaml"
    path.write_text(US.replace(SHIPPED_SECTIONS, sections))
    return path


def test_shipped_packs_expect_access_transparency_in_their_jurisdiction() -> None:
    us, eu = resolve_policy("us"), resolve_policy("eu")
    assert us.access_transparency is not None and us.access_transparency.expected
    assert us.access_transparency.allowed_countries == ("US",)
    assert eu.access_transparency is not None and set(eu.access_transparency.allowed_countries) == EU_MEMBER_STATES
    for pack in (us, eu):
        assert pack.access_transparency is not None and pack.key_access_justifications is not None
        assert "THIRD_PARTY_DATA_REQUEST" not in pack.access_transparency.allowed_reasons
        assert pack.key_access_justifications.allowed_reasons == ("CUSTOMER_INITIATED_ACCESS",
                                                                  "GOOGLE_INITIATED_SYSTEM_OPERATION")


def test_a_pack_without_the_sections_loads_and_leaves_the_controls_to_error(tmp_path: Path) -> None:
    pack = load_policy(pack_with(tmp_path, ""))
    assert pack.access_transparency is None and pack.key_access_justifications is None


def test_unknown_and_continent_country_codes_are_refused_with_their_line(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "access_transparency:\n  expected: true\n  allowed_countries: [US, '??', EUR, us, XX, US]\n"
                               "  allowed_reasons: [CUSTOMER_INITIATED_SUPPORT]\n")
    problems = {e.field: str(e) for e in validate_policy(path)}
    line = US[:US.index("# SOV-07: Access Transparency")].count("\n") + 3
    assert set(problems) == {f"access_transparency.allowed_countries[{i}]" for i in (1, 2, 3, 4, 5)}
    assert "names no country" in problems["access_transparency.allowed_countries[1]"]
    assert "names no country" in problems["access_transparency.allowed_countries[2]"]
    assert "not an ISO 3166-1 alpha-2 country code" in problems["access_transparency.allowed_countries[3]"]
    assert "listed twice" in problems["access_transparency.allowed_countries[5]"]
    assert problems["access_transparency.allowed_countries[1]"].startswith(f"{path}:{line}: ")


def test_expected_must_be_a_boolean_and_reasons_must_be_known(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "access_transparency:\n  expected: 'yes'\n  allowed_countries: [US]\n"
                               "  allowed_reasons: [CUSTOMER_INITIATED_ACCESS]\n"
                               "key_access_justifications:\n  allowed_reasons: [THIRD_PARTY_REQUEST]\n")
    problems = {e.field: str(e) for e in validate_policy(path)}
    assert set(problems) == {"access_transparency.expected", "access_transparency.allowed_reasons[0]",
                             "key_access_justifications.allowed_reasons[0]"}
    assert "expected a boolean" in problems["access_transparency.expected"]
    # CUSTOMER_INITIATED_ACCESS is a KAJ code, not an Access Transparency reason: the lists are not mixed.
    assert "not an Access Transparency reason type" in problems["access_transparency.allowed_reasons[0]"]


def test_an_empty_justification_list_is_refused_because_the_node_could_not_work(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "key_access_justifications:\n  allowed_reasons: []\n")
    [problem] = validate_policy(path)
    assert problem.field == "key_access_justifications.allowed_reasons" and "could not work" in str(problem)


def test_missing_fields_are_named(tmp_path: Path) -> None:
    path = pack_with(tmp_path, "access_transparency:\n  allowed_countries: [US]\n")
    fields = {e.field for e in validate_policy(path)}
    assert fields == {"access_transparency.expected", "access_transparency.allowed_reasons"}


def test_kaj_reason_names_follow_the_kms_enum_numbers() -> None:
    # Evidence from the KMS client carries numbers; the view maps them through this order.
    assert [(r.name, r.value) for r in kms_v1.AccessReason] == [(name, i) for i, name in enumerate(KAJ_REASONS)]
