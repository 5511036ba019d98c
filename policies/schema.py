"""The shape of a policy pack, declared once and read by the validator in `pack.py`.

A hand-written schema (not JSON Schema) because every error must carry the YAML line of the node
it is about, and the validator walks the composed YAML node tree with this table beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

STR = "string"
LIST_STR = "list of strings"
MAP_STR = "mapping of string to string"
OBJECT = "mapping"
LIST_OBJECT = "list of mappings"
DATE = "date (YYYY-MM-DD)"
BOOL = "boolean (true or false)"
# Google's own REST JSON kept as written (a perimeter rule, an access level): compared by content.
LIST_BODY = "list of mappings (Google's REST JSON)"


@dataclass(frozen=True)
class Field:
    kind: str
    required: bool = True
    fields: Mapping[str, Field] = field(default_factory=dict)
    hint: str = ""


WAIVER = {
    "control": Field(STR, hint="a control id such as SOV-04 (see `sovaudit controls list`)"),
    "resource": Field(STR, hint="a glob over the finding's resource, e.g. 'projects/_/buckets/fed-node-us-*'"),
    "owner": Field(STR, hint="who answers for the exception, e.g. security@example.org"),
    "justification": Field(STR, hint="why the failure is accepted"),
    "expires": Field(DATE, hint="an ISO date such as 2027-03-31; waivers never last forever"),
}

PACK: dict[str, Field] = {
    "apiVersion": Field(STR, hint="apiVersion: sovaudit/v1"),
    "kind": Field(STR, hint="kind: PolicyPack"),
    "name": Field(STR),
    "description": Field(STR, required=False),
    "project": Field(STR, hint="the project id, e.g. fed-node-us"),
    "organization": Field(STR, hint="organizations/NUMBER"),
    "jurisdiction": Field(OBJECT, fields={
        "name": Field(STR),
        "allowed_regions": Field(LIST_STR, hint="e.g. [us-central1]"),
        "allowed_policy_values": Field(LIST_STR, hint='org-policy values, e.g. ["in:us-central1-locations"]'),
        "probe_regions": Field(LIST_STR, hint="regions outside the jurisdiction, e.g. [europe-west4]"),
    }),
    "network": Field(OBJECT, fields={"network": Field(STR), "subnetwork": Field(STR), "egress": Field(
        OBJECT, required=False, hint="SEC-09's egress firewall posture; omitted means firewall: deny-all", fields={
            "firewall": Field(STR, hint="deny-all (an effective egress deny of 0.0.0.0/0) or not-required"),
            "allowed_destinations": Field(LIST_STR, required=False,
                                          hint="CIDR ranges egress allow rules may open, e.g. [199.36.153.4/30]"),
            "allowed_peerings": Field(LIST_STR, required=False,
                                      hint="peer networks the node network may peer with, as "
                                           "projects/P/global/networks/N (exact)"),
        })}),
    "perimeter": Field(OBJECT, fields={
        "access_policy": Field(STR, hint="accessPolicies/NUMBER"),
        "name": Field(STR, hint="accessPolicies/NUMBER/servicePerimeters/NAME"),
        "restricted_services": Field(LIST_STR),
        # Everything below is an exact allow-list SEC-01 holds the whole perimeter to; absent = none allowed.
        "extra_resources": Field(LIST_STR, required=False,
                                 hint="projects/NUMBER or //compute.googleapis.com/projects/P/global/networks/N "
                                      "the perimeter may hold beside the node's project"),
        "allowed_ingress": Field(LIST_BODY, required=False,
                                 hint="full IngressPolicy bodies {title?, ingressFrom, ingressTo}, as the "
                                      "Access Context Manager API returns them"),
        "allowed_egress": Field(LIST_BODY, required=False,
                                hint="full EgressPolicy bodies {title?, egressFrom, egressTo}"),
        "allowed_bridges": Field(LIST_OBJECT, required=False, fields={
            "name": Field(STR, hint="accessPolicies/NUMBER/servicePerimeters/NAME of a bridge"),
            "resources": Field(LIST_STR, hint="every project the bridge may hold, projects/NUMBER"),
        }),
        "allowed_access_levels": Field(LIST_BODY, required=False,
                                       hint="full AccessLevel bodies {name, basic: {conditions: [...]}}"),
    }),
    "service_account": Field(STR, hint="NAME@PROJECT.iam.gserviceaccount.com"),
    "buckets": Field(OBJECT, fields={
        "input": Field(STR), "output": Field(STR), "allowed": Field(LIST_STR),
    }),
    "dataset": Field(STR),
    # SEC-07: the exact principals that may read the node's objects and tables (IAM member form).
    "readers": Field(LIST_STR, required=False,
                     hint="IAM members, e.g. [serviceAccount:batch-runner@PROJECT.iam.gserviceaccount.com]"),
    # SOV-04/SOV-05: who may appear in bucket IAM policies and dataset access lists.
    "access": Field(OBJECT, required=False, fields={
        "allowed_domains": Field(LIST_STR, required=False, hint="e.g. [example.org]"),
        "allowed_principals": Field(LIST_STR, required=False,
                                    hint="IAM members, e.g. [group:genomics-platform-admins@example.org]"),
    }),
    "kms": Field(OBJECT, fields={
        "location": Field(STR),
        "key_ring": Field(STR, hint="projects/P/locations/L/keyRings/NAME"),
    }),
    "confidential": Field(OBJECT, fields={
        "required_type": Field(STR, hint="SEV, SEV_SNP or TDX"),
        "machine_series": Field(LIST_STR, hint="e.g. [n2d, c2d, c3d]"),
        # CC-05: each task asks the Confidential Computing API for an attestation token (docs/confidential-computing.md).
        "in_guest_attestation": Field(OBJECT, required=False, hint="CC-05; omitted means off", fields={
            "enabled": Field(BOOL, hint="true: each task stores an attestation token and CC-05 checks it"),
            "audience": Field(STR, required=False, hint="the token's aud the tasks ask for; default "
                                                         "https://sovaudit.dev/attestation"),
            "jwks_uri": Field(STR, required=False, hint="where Google publishes the token signing keys; default "
                                                         "the jwks_uri of the Confidential Computing OIDC discovery"),
        }),
    }),
    "pipeline": Field(OBJECT, fields={
        "instance_template": Field(STR),
        "machine_type": Field(STR),
        "labels": Field(MAP_STR, required=False),
    }),
    # Which pipeline jobs a verify without --job judges (audit/collectors/scope.py).
    "scope": Field(OBJECT, required=False, fields={
        "lookback": Field(STR, hint="how far before the newest pipeline job's creation to judge every job, "
                                    "e.g. 24h or 7d"),
    }),
    # Where the node's log entries may be stored, and which exclusions are expected (SEC-08).
    "logging": Field(OBJECT, required=False, fields={
        "allowed_locations": Field(LIST_STR, hint="log bucket locations inside the jurisdiction, e.g. [us-central1]"),
        "required_bucket_location": Field(STR, required=False,
                                          hint="global: accept _Required there (it cannot move on an existing project)"),
        "allowed_exclusions": Field(LIST_OBJECT, required=False, fields={
            "name": Field(STR, hint="the exclusion's id"),
            "filter": Field(STR, hint="its filter, exactly as Logging returns it"),
        }),
    }),
    # SOV-09: the Assured Workloads workload that governs the node; omitted, SOV-09 is NOT_APPLICABLE.
    "assured_workload": Field(STR, required=False,
                              hint="organizations/NUMBER/locations/LOCATION/workloads/ID, as "
                                   "`gcloud assured workloads list` shows it"),
    # SOV-07 / SOV-08 (policies/staff_access.py): where and why Google's own staff and systems may
    # reach the node's data. Absent: the control is ERROR (the pack does not say what is allowed).
    "access_transparency": Field(OBJECT, required=False, fields={
        "expected": Field(BOOL, hint="true when Access Transparency is on for the node's organization or project"),
        "allowed_countries": Field(LIST_STR, hint="ISO 3166-1 alpha-2 codes, e.g. [US]"),
        "allowed_reasons": Field(LIST_STR, hint="Access Transparency reason types, e.g. [CUSTOMER_INITIATED_SUPPORT]"),
    }),
    "key_access_justifications": Field(OBJECT, required=False, fields={
        "allowed_reasons": Field(LIST_STR, hint="e.g. [CUSTOMER_INITIATED_ACCESS, GOOGLE_INITIATED_SYSTEM_OPERATION]"),
    }),
    "severity_overrides": Field(MAP_STR, required=False, hint="control id -> critical|high|medium|low"),
    "waivers": Field(LIST_OBJECT, required=False, fields=WAIVER),
}

CONFIDENTIAL_TYPES = ("SEV", "SEV_SNP", "TDX")
EGRESS_FIREWALL_MODES = ("deny-all", "not-required")
SEVERITIES = ("critical", "high", "medium", "low")
