"""What the pack demands of Google's own access to the node: Access Transparency (SOV-07) and Key
Access Justifications (SOV-08).

Kept beside `pack.py` rather than inside it: two small sections with their own vocabularies (ISO
3166-1 country codes, Google's two sets of justification codes) and their own checks. `pack.py`
calls `check` while validating and `build` while loading.

```yaml
access_transparency:            # SOV-07
  expected: true                # Access Transparency is on for the node (its enablement cannot be read by API)
  allowed_countries: [US]       # ISO 3166-1 alpha-2; judged against the staff member's physical and office country
  allowed_reasons: [CUSTOMER_INITIATED_SUPPORT, GOOGLE_INITIATED_SERVICE, GOOGLE_RESPONSE_TO_PRODUCTION_ALERT]
key_access_justifications:      # SOV-08
  allowed_reasons: [CUSTOMER_INITIATED_ACCESS, GOOGLE_INITIATED_SYSTEM_OPERATION]
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Access Transparency `reason[].type` values (gcp-escape-routes.md §8.3).
AT_REASONS = ("CUSTOMER_INITIATED_SUPPORT", "GOOGLE_INITIATED_SERVICE", "THIRD_PARTY_DATA_REQUEST",
              "GOOGLE_INITIATED_REVIEW", "GOOGLE_RESPONSE_TO_PRODUCTION_ALERT")

# CryptoKey.keyAccessJustificationsPolicy.allowedAccessReasons (cloudkms v1 discovery document, §8.4).
# Google says these codes "are similar [to Access Transparency's] but not equivalent and shouldn't be
# directly compared", so the two lists are separate fields of the pack.
KAJ_REASONS = ("REASON_UNSPECIFIED", "CUSTOMER_INITIATED_SUPPORT", "GOOGLE_INITIATED_SERVICE",
               "THIRD_PARTY_DATA_REQUEST", "GOOGLE_INITIATED_REVIEW", "CUSTOMER_INITIATED_ACCESS",
               "GOOGLE_INITIATED_SYSTEM_OPERATION", "REASON_NOT_EXPECTED", "MODIFIED_CUSTOMER_INITIATED_ACCESS",
               "MODIFIED_GOOGLE_INITIATED_SYSTEM_OPERATION", "GOOGLE_RESPONSE_TO_PRODUCTION_ALERT",
               "CUSTOMER_AUTHORIZED_WORKFLOW_SERVICING")

# ISO 3166-1 alpha-2, officially assigned codes. Access Transparency also writes `??` (unknown) and
# 3-letter continent codes for low-population countries; neither names a country, so neither can be
# allowed (SOV-07 fails an access that carries one).
ISO_3166_ALPHA2 = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO
JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR
MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO
RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV
TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split())


@dataclass(frozen=True)
class AccessTransparencyRule:
    """SOV-07: whether Access Transparency is on, and where and why Google staff may access the node."""

    expected: bool
    allowed_countries: tuple[str, ...]
    allowed_reasons: tuple[str, ...]


@dataclass(frozen=True)
class KeyAccessRule:
    """SOV-08: the justifications Google may present to use the node's CMEK keys."""

    allowed_reasons: tuple[str, ...]


Report = Callable[[str, str, str], None]   # (field path, message, hint)


def _codes(values: Sequence[Any], path: str, known: Sequence[str], what: str, hint: str, report: Report) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        item = f"{path}[{index}]"
        if value in seen:
            report(item, f"{value!r} is listed twice", "keep one entry")
        seen.add(value)
        if value not in known:
            report(item, f"{value!r} is not {what}", hint)


def check(values: Mapping[str, Any], report: Report) -> None:
    """Problems of the two sections, beyond their shape (which the schema checks)."""
    at = values.get("access_transparency") or {}
    countries = at.get("allowed_countries")
    if countries is not None and not countries:
        report("access_transparency.allowed_countries", "must not be empty",
               "list the countries of the jurisdiction, e.g. [US]; an access from anywhere else fails SOV-07")
    seen: set[str] = set()
    for index, country in enumerate(countries or ()):
        item = f"access_transparency.allowed_countries[{index}]"
        if country in seen:
            report(item, f"{country!r} is listed twice", "keep one entry per country")
        seen.add(country)
        if country == "??" or (isinstance(country, str) and len(country) == 3 and country.isalpha()):
            report(item, f"{country!r} names no country (Access Transparency writes it for an unknown location "
                   "or a continent)", "list ISO 3166-1 alpha-2 country codes only, e.g. DE")
        elif country not in ISO_3166_ALPHA2:
            report(item, f"{country!r} is not an ISO 3166-1 alpha-2 country code", "upper case, e.g. US or DE")
    _codes(at.get("allowed_reasons") or (), "access_transparency.allowed_reasons", AT_REASONS,
           "an Access Transparency reason type", "one of " + ", ".join(AT_REASONS), report)
    kaj = values.get("key_access_justifications") or {}
    reasons = kaj.get("allowed_reasons")
    if reasons is not None and not reasons:
        report("key_access_justifications.allowed_reasons", "must not be empty",
               "a key whose policy allows no reason refuses every encrypt and decrypt: the node could not work; "
               "list e.g. [CUSTOMER_INITIATED_ACCESS, GOOGLE_INITIATED_SYSTEM_OPERATION]")
    _codes(reasons or (), "key_access_justifications.allowed_reasons", KAJ_REASONS,
           "a Key Access Justifications reason", "one of " + ", ".join(KAJ_REASONS), report)


def access_transparency_rule(values: Mapping[str, Any]) -> AccessTransparencyRule | None:
    """SOV-07's rule from a validated pack (None without the section: SOV-07 is then ERROR)."""
    at = values.get("access_transparency")
    return AccessTransparencyRule(bool(at["expected"]), tuple(at["allowed_countries"]),
                                  tuple(at["allowed_reasons"])) if at else None


def key_access_rule(values: Mapping[str, Any]) -> KeyAccessRule | None:
    """SOV-08's rule from a validated pack (None without the section: SOV-08 is then ERROR)."""
    kaj = values.get("key_access_justifications")
    return KeyAccessRule(tuple(kaj["allowed_reasons"])) if kaj else None
