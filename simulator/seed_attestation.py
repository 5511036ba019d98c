"""The recorded run's attestation tokens (CC-05): what each task would have stored in its manifest.

When the node's `job.attest` is true, every seeded task gets the token the simulator's Confidential Computing API would have minted for
it (simulator/api/confidentialcomputing.py): issued on its VM a few seconds after the task started,
audience the packs' default, nonce `attestation_nonce(run_id, task_index)`. A scenario's
`seed.attestation` list changes one task's token the way an attack or a fault would:

```yaml
seed:
  attestation:
    - {index: 3, forge: true}            # signed with a key the JWKS does not publish
    - {index: 4, copy_from: 2}           # task 2's token stored in task 4's manifest
    - {index: 5, claims: {dbgstat: enabled}}   # claims as Google would have minted them (dotted; null deletes)
    - {index: 6, missing: true}          # no token at all
    - {index: 7, nonce_run: other-run}   # a token minted for the same task index of another run
    - {index: 8, tamper: {hwmodel: GCP_AMD_SEV}}   # claims edited after signing (signature no longer matches)
```
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sovaudit.pipeline.attest import MANIFEST_TOKEN_KEY, attestation_nonce
from sovaudit.policies.pack import DEFAULT_ATTESTATION_AUDIENCE
from sovaudit.simulator import attestation
from sovaudit.simulator import schema as s
from sovaudit.simulator.state import SimState

ATTESTATION_SPEC = s.ListOf(s.Struct(
    required={"index": s.Integer(minimum=0)},
    optional={"missing": s.Boolean(), "forge": s.Boolean(), "copy_from": s.Integer(minimum=0),
              "nonce_run": s.Text(),
              "claims": s.MapOf(s.AnyValue(), key_pattern=r"[A-Za-z0-9_.]+", min_items=1),
              "tamper": s.MapOf(s.AnyValue(), key_pattern=r"[A-Za-z0-9_.]+", min_items=1)}))


def _set(claims: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    here = claims
    for part in parts[:-1]:
        here = here.setdefault(part, {})
    if value is None:
        here.pop(parts[-1], None)
    else:
        here[parts[-1]] = value


def _tampered(token: str, edits: Mapping[str, Any]) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for dotted, value in edits.items():
        _set(claims, dotted, value)
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


def attest_tasks(state: SimState, *, run_id: str, vm_links: Sequence[str], manifests: Sequence[tuple[str, str]],
                 issued: Sequence[datetime], overrides: Sequence[Mapping[str, Any]]) -> None:
    """Mint each task's token and store it in its manifest object's custom metadata.

    `vm_links[i]` is task i's VM selfLink, `manifests[i]` its (bucket, object), `issued[i]` when it attested.
    """
    count = len(vm_links)
    by_index = {int(o["index"]) % count: o for o in overrides}
    tokens: list[str] = []
    for index, link in enumerate(vm_links):
        override = by_index.get(index, {})
        match = re.search(r"/zones/([^/]+)/instances/([^/]+)$", link)
        zone, name = (match.group(1), match.group(2)) if match else ("", "")
        vm = state.instances.get((zone, name)) or {}
        nonce = attestation_nonce(str(override.get("nonce_run") or run_id), index)
        claims = attestation.claims_for(state, vm, zone, audience=DEFAULT_ATTESTATION_AUDIENCE, nonces=[nonce],
                                        issued_at=int(issued[index].timestamp()))
        for dotted, value in (override.get("claims") or {}).items():
            _set(claims, dotted, value)
        token = attestation.sign(state, claims, key="rogue" if override.get("forge") else "google")
        if override.get("tamper"):
            token = _tampered(token, override["tamper"])
        tokens.append(token)
    for index, (bucket, object_name) in enumerate(manifests):
        override = by_index.get(index, {})
        if override.get("missing"):
            continue
        token = tokens[int(override["copy_from"]) % count] if "copy_from" in override else tokens[index]
        stored = state.objects.get((bucket, object_name))
        if stored is not None:   # the listing's custom metadata is what CC-05 reads (pipeline/task.py)
            stored.metadata.setdefault("metadata", {})[MANIFEST_TOKEN_KEY] = token
