"""The control catalogue. Importing this package registers every control (DESIGN §4).

One module per pillar; each control is a pure function of the collected evidence, registered with
`sovaudit.audit.registry.control`. Find one by id: `grep -rn 'id="SEC-04"' audit/controls`.
"""

from sovaudit.audit.controls import (  # noqa: F401
    assured_workloads,  # SOV-09
    attestation,  # noqa: F401  (CC-04)
    confidential,
    guest_attestation,  # noqa: F401  (CC-05)
    history,  # noqa: F401  (INT-02)
    integrity,
    network,
    perimeter,
    reads,
    security,
    sovereignty,
    staff_access,  # SOV-07, SOV-08
)
from sovaudit.audit.controls import logging as _logging  # noqa: F401  (SEC-08)
