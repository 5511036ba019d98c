"""The run's VMs over time: every Admin Activity change to one of them in the window, and what it means.

A worker's insert body and its state at audit time are two moments of its life. In between an
insider can add an external address and remove it again (addAccessConfig, deleteAccessConfig),
move a NIC to another network or give it an IPv6 address (updateNetworkInterface), run it as
another identity (stop, setServiceAccount, start), change its machine or confidential settings
(setMachineType, update) or relabel it out of the job's `batch-job-uid` scope (setLabels); Batch
then deletes the VM and only the log remembers. Admin Activity cannot be switched off, so the
window's `v1.compute.instances.<method>` entries (the `logging.network_changes` query, which SEC-09
reads too: one request for both) are the VM's history.

Each judge below yields findings for one control: SEC-02 (external addresses, networks), SEC-03
(identity), CC-02 (machine and confidential settings), CC-03 (scope: relabels, and changes no
control can classify). A change is matched to the run's VMs by zone and name (Batch names embed
the job uid, so a name is not reused within a window).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.models import Finding
from sovaudit.audit.views import (
    ConfidentialConfig,
    EvidenceIncomplete,
    LogEntry,
    RunVms,
    last_segment,
    log_entries,
)
from sovaudit.audit.views_network import network_ref

PURPOSE = "logging.network_changes"
_METHOD = re.compile(r"^(?:v1|beta|alpha)\.compute\.instances\.([A-Za-z]+)$")
_WHERE = re.compile(r"(?:^|/)projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$")

# What each verb touches; a verb in none of these sets on a run VM is reported (CC-03) as a change
# nobody judged. `stop`/`start` and the like change no promise by themselves (a stop is how
# setServiceAccount and setMachineType become possible, and those are judged).
ADDRESS_VERBS = frozenset({"addAccessConfig", "updateAccessConfig", "deleteAccessConfig", "updateNetworkInterface"})
IDENTITY_VERBS = frozenset({"setServiceAccount"})
MACHINE_VERBS = frozenset({"setMachineType"})
LABEL_VERBS = frozenset({"setLabels"})
WHOLE_VERBS = frozenset({"update"})   # instances.update (PUT): judged by every control for its fields
HARMLESS_VERBS = frozenset({"stop", "start", "reset", "suspend", "resume", "setDeletionProtection",
                            "setDiskAutoDelete", "setName", "setDescription"})
JUDGED_VERBS = ADDRESS_VERBS | IDENTITY_VERBS | MACHINE_VERBS | LABEL_VERBS | WHOLE_VERBS | HARMLESS_VERBS


@dataclass(frozen=True)
class VmChange:
    """One successful instance mutation: the `first` entry of its operation (the one with the request)."""

    verb: str
    zone: str
    name: str
    request: Mapping[str, Any]
    entry: LogEntry

    @property
    def who(self) -> str:
        return self.entry.principal or "someone"

    @property
    def when(self) -> str:
        return self.entry.timestamp

    @property
    def resource(self) -> str:
        return self.entry.resource_name or f"zones/{self.zone}/instances/{self.name}"

    @property
    def evidence(self) -> tuple[str, ...]:
        return self.entry.evidence

    @property
    def said(self) -> str:
        """'{who} at {when} ({method})', the start of every finding about it."""
        return f"{self.who} at {self.when} ({self.entry.method_name})"


def instance_changes(log: EvidenceLog) -> tuple[VmChange, ...] | None:
    """Every instance mutation in the window, oldest first (None when the question was not asked).

    Raises EvidenceIncomplete when the query failed or lost a page. An entry whose status carries an
    error changed nothing; an LRO's `last` entry repeats only the request type."""
    if not log.by_purpose(PURPOSE).items:
        return None
    found = []
    for entry in log_entries(log, PURPOSE):
        match = _METHOD.match(entry.method_name)
        where = _WHERE.search(entry.resource_name)
        if not match or not where or entry.status.get("code"):
            continue
        if entry.operation.get("last") and not entry.operation.get("first"):
            continue
        found.append(VmChange(verb=match.group(1), zone=where.group(2), name=where.group(3),
                              request={k: v for k, v in entry.request.items() if k != "@type"}, entry=entry))
    return tuple(sorted(found, key=lambda c: c.when))


@dataclass(frozen=True)
class RunHistory:
    """The changes to the run's VMs in the window, or why they could not be read (`problem`)."""

    changes: tuple[VmChange, ...]
    problem: str
    evidence: tuple[str, ...]

    def of(self, verbs: frozenset[str]) -> tuple[VmChange, ...]:
        return tuple(c for c in self.changes if c.verb in verbs)


def run_history(log: EvidenceLog, run: RunVms) -> RunHistory:
    ids = tuple(log.by_purpose(PURPOSE).ids)
    try:
        changes = instance_changes(log)
    except EvidenceIncomplete as missing:
        return RunHistory((), f"the window's changes to the run's VMs could not be read ({missing.message})",
                          ids + missing.evidence_ids)
    if changes is None:
        return RunHistory((), "the window's changes to the run's VMs were not collected (logging entries.list)", ids)
    keys = {(vm.zone, vm.name) for vm in run.vms}
    return RunHistory(tuple(c for c in changes if (c.zone, c.name) in keys), "", ids)


def unreadable(history: RunHistory, run: RunVms, subject: str) -> Iterator[Finding]:
    """ERROR when the history is unreadable and some of the run's VMs are gone: their insert body is
    then all there is, and what was done to them afterwards cannot be shown. VMs still listed are
    judged on their live state (CC-03 and SEC-09 already report the unreadable log)."""
    if history.problem and run.deleted:
        names = ", ".join(vm.name for vm in run.deleted[:5]) + (" ..." if len(run.deleted) > 5 else "")
        yield Finding.error(run.deleted[0].resource, f"{history.problem}: {len(run.deleted)} of the run's VMs no "
                            f"longer exist ({names}), so {subject} after their insert cannot be shown",
                            history.evidence)


def _gone(change: VmChange, run: RunVms) -> str:
    deleted = {(vm.zone, vm.name) for vm in run.deleted}
    return "; the VM has since been deleted" if (change.zone, change.name) in deleted else ""


# ------------------------------------------------------------------------------------------------ SEC-02


def _configs_text(configs: Any) -> str:
    parts = [str(c.get("natIP") or c.get("externalIpv6") or c.get("name") or c.get("type") or "access config")
             for c in configs or () if isinstance(c, Mapping)]
    return ", ".join(parts) or "an access config"


def address_findings(history: RunHistory, run: RunVms, project: str, node_network: str) -> Iterator[Finding]:
    """SEC-02: any moment in the window when a worker had an external address, or left the node network."""
    for change in history.of(ADDRESS_VERBS | WHOLE_VERBS):
        request, gone = change.request, _gone(change, run)
        if change.verb in {"addAccessConfig", "updateAccessConfig"}:
            yield Finding.fail(change.resource, f"{change.said} gave {change.name} an external address "
                               f"({_configs_text([request])}) during the run{gone}", change.evidence)
        elif change.verb == "deleteAccessConfig":
            yield Finding.fail(change.resource, f"{change.said} removed an access config from {change.name}: it had "
                               f"an external address until then{gone}", change.evidence)
        else:
            nics = [request] if change.verb == "updateNetworkInterface" else \
                [n for n in request.get("networkInterfaces") or () if isinstance(n, Mapping)]
            for nic in nics:
                configs = [*(nic.get("accessConfigs") or ()), *(nic.get("ipv6AccessConfigs") or ())]
                if configs:
                    yield Finding.fail(change.resource, f"{change.said} gave {change.name} an external address "
                                       f"({_configs_text(configs)}) during the run{gone}", change.evidence)
                if nic.get("network"):
                    net = network_ref(str(nic["network"]), project)
                    if net != (project, node_network):
                        yield Finding.fail(change.resource, f"{change.said} moved a network interface of "
                                           f"{change.name} to network {_net_text(net, nic['network'])}, outside "
                                           f"the node network {node_network}: its egress controls no longer "
                                           f"applied{gone}", change.evidence)


def _net_text(net: tuple[str, str], given: Any) -> str:
    return f"projects/{net[0]}/global/networks/{net[1]}" if net[1] else str(given)


# ------------------------------------------------------------------------------------------------ SEC-03


def identity_findings(history: RunHistory, run: RunVms, expected: str, default_sa: str) -> Iterator[Finding]:
    """SEC-03: a worker that ran as another identity for part of the window."""
    for change in history.of(IDENTITY_VERBS | WHOLE_VERBS):
        if change.verb == "update":
            if "serviceAccounts" not in change.request:
                continue
            emails = [str(a.get("email") or "") for a in change.request.get("serviceAccounts") or ()
                      if isinstance(a, Mapping)]
        else:
            emails = [str(change.request.get("email") or "")]
        emails = [default_sa if e in {"", "default"} else e for e in emails] or [default_sa]
        wrong = [e for e in emails if e != expected]
        if wrong:
            label = " (the default compute service account)" if default_sa in wrong else ""
            yield Finding.fail(change.resource, f"{change.said} made {change.name} run as {', '.join(wrong)}{label}, "
                               f"not {expected}{_gone(change, run)}", change.evidence)
        else:
            yield Finding.ok(change.resource, f"{change.said} set {change.name}'s service account to {expected}",
                             change.evidence)


# ------------------------------------------------------------------------------------------------ CC-02


def confidential_findings(history: RunHistory, run: RunVms, required: str,
                          series: tuple[str, ...]) -> Iterator[Finding]:
    """CC-02: a machine or confidential change that left a worker non-confidential for a while."""
    for change in history.of(MACHINE_VERBS | WHOLE_VERBS):
        request, problems = change.request, []
        machine = last_segment(str(request.get("machineType") or ""))
        if machine and machine.split("-", 1)[0].lower() not in series:
            problems.append(f"machine type {machine} is not in a series that supports {required} "
                            f"({', '.join(series)})")
        if change.verb == "update":
            # instances.update is a PUT: a body without confidentialInstanceConfig clears it (Google
            # documents no merge for update). Read both ways, an omission is not proof of confidentiality.
            config = ConfidentialConfig.parse(request.get("confidentialInstanceConfig"))
            if not config.enabled:
                problems.append("it switched confidential compute off" if "confidentialInstanceConfig" in request
                                else "its body carries no confidentialInstanceConfig (update replaces the instance)")
            elif config.effective_type != required:
                problems.append(f"it set confidential type {config.effective_type}, the policy requires {required}")
        if problems:
            yield Finding.fail(change.resource, f"{change.said} changed {change.name}: {'; '.join(problems)}"
                               f"{_gone(change, run)}", change.evidence)


# ------------------------------------------------------------------------------------------------ CC-03


def scope_findings(history: RunHistory, uid: str) -> Iterator[Finding]:
    """CC-03: a relabel that took a worker out of the job's `batch-job-uid` scope (it stays one of the
    run's VMs: it was inserted with the uid), and any change to a worker no control classifies."""
    for change in history.changes:
        if change.verb in LABEL_VERBS or (change.verb == "update" and "labels" in change.request):
            labels = change.request.get("labels") or {}
            now = labels.get("batch-job-uid") if isinstance(labels, Mapping) else None
            if now != uid:
                how = f"set batch-job-uid to {now!r}" if now else "removed its batch-job-uid label"
                yield Finding.fail(change.resource, f"{change.said} {how} on {change.name}: the VM left the job's "
                                   "label scope (and the label-filtered listing); it was inserted with the "
                                   "job's uid, so it is still judged as one of the run's VMs", change.evidence)
        elif change.verb not in JUDGED_VERBS:
            yield Finding.error(change.resource, f"{change.said} changed {change.name} in a way no control "
                                "judges; what the VM was afterwards cannot be shown", change.evidence)
