"""The Batch job and its confidential instance template, built from a policy pack.

Cloud Batch v1 has no confidential-computing field on the instance policy: a job whose
``allocationPolicy.instances[0].policy`` asks for SEV gets ordinary VMs. Confidential VMs come
only from an instance template carrying ``confidentialInstanceConfig``, named by
``instances[0].instanceTemplate``; Batch then takes the network and the service account from
the template (the job's service account must match it). Everything here is Google's REST JSON
(camelCase), so ``pipeline plan`` output can be read against Google's documentation and sent
as is. Nothing here talks to the cloud.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sovaudit import __version__

Provisioning = Literal["STANDARD", "SPOT"]
DEFAULT_TABLE = "variants"
# A COS image Batch supports for container runnables; COS images support AMD SEV.
DEFAULT_BOOT_IMAGE = "projects/batch-custom-image/global/images/family/batch-cos-stable-official"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# The task exits 2 for a malformed input: retrying cannot help, so Batch fails the task at once.
BAD_INPUT_EXIT_CODE = 2


@dataclass(frozen=True)
class PlanOptions:
    inputs: tuple[str, ...]
    tasks: int | None = None
    parallelism: int | None = None
    machine_type: str | None = None
    provisioning: Provisioning = "STANDARD"
    image: str | None = None
    max_run_duration: str = "3600s"
    retries: int = 2
    run_id: str | None = None
    table: str | None = None
    cpu_milli: int = 4000
    memory_mib: int = 8192
    boot_disk_gb: int = 50
    vep_command: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Plan:
    run_id: str
    job_id: str
    template_name: str
    template: dict[str, Any]
    job: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"instanceTemplate": self.template, "job": self.job}


class PlanError(ValueError):
    """Options that cannot make a valid job (the message names the option)."""


# A run id becomes part of a BigQuery job id, labels, the Batch job id and the manifest path: letters,
# digits, `_` and `-` only (no `/`, `.` or spaces), starting with a letter or digit.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# project.dataset.table, as BigQuery names them (a project id: 6-30 lower-case letters, digits, hyphens).
_TABLE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_-]{1,1024}$")
# A container image reference: [host[:port]/]path[:tag][@sha256:digest], no spaces or shell characters.
_IMAGE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*"
                    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$")


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise PlanError(f"--run-id {run_id!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or "
                        "digit (it becomes part of job ids, labels and object names)")
    return run_id


def check_node_table(pack: Any, table: str) -> str:
    """A table in the node's own dataset: loading elsewhere (another project, a look-alike dataset) is the
    egress SEC-04 exists to catch, so the pipeline refuses to plan it in the first place."""
    check_table(table)
    project, dataset, _ = table.split(".")
    if (project, dataset) != (pack.project, pack.dataset):
        raise PlanError(f"--table {table!r}: the node's data may only be loaded into its own dataset "
                        f"{pack.project}.{pack.dataset} (e.g. {pack.project}.{pack.dataset}.{DEFAULT_TABLE})")
    return table


def check_table(table: str) -> str:
    if not _TABLE.match(table):
        raise PlanError(f"--table {table!r}: expected PROJECT.DATASET.TABLE (e.g. fed-node-us.hospital_data.variants;"
                        " dataset and table names take letters, digits and '_')")
    return table


def check_image(image: str) -> str:
    if not _IMAGE.match(image):
        raise PlanError(f"--image {image!r}: expected a container image reference such as "
                        "us-central1-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG (no spaces)")
    return image


def new_run_id(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{moment}-{secrets.token_hex(3)}"


def label_value(text: str) -> str:
    """A Google label value: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def job_id_for(run_id: str) -> str:
    """A Batch job id (``[a-z][-a-z0-9]*[a-z0-9]``, at most 63) derived from the run id."""
    tail = re.sub(r"[^a-z0-9-]", "-", run_id.lower()).strip("-")
    return f"sovaudit-{tail}"[:63].rstrip("-")


def default_image(pack: Any) -> str:
    return f"{pack.region}-docker.pkg.dev/{pack.project}/sovaudit/task:{__version__}"


def _duration(text: str) -> str:
    match = re.fullmatch(r"(\d+)(s|m|h)?", text.strip())
    if not match:
        raise PlanError(f"--max-run-duration {text!r}: expected seconds such as 3600s, or 90m, or 2h")
    value = int(match.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    if value <= 0:
        raise PlanError("--max-run-duration must be positive")
    return f"{value}s"


def build_template(pack: Any, options: PlanOptions) -> dict[str, Any]:
    """The instance template (REST ``InstanceTemplate``): confidential, shielded, no external IP."""
    machine_type = options.machine_type or pack.pipeline.machine_type
    series = machine_type.split("-", 1)[0]
    if series not in pack.confidential.machine_series:
        raise PlanError(f"--machine-type {machine_type}: series {series!r} cannot run "
                        f"{pack.confidential.required_type} confidential VMs; the policy allows "
                        f"{', '.join(pack.confidential.machine_series)}")
    spot = options.provisioning == "SPOT"
    scheduling: dict[str, Any] = {"onHostMaintenance": "TERMINATE", "provisioningModel": options.provisioning,
                                  "automaticRestart": not spot}
    if spot:
        scheduling["instanceTerminationAction"] = "DELETE"
    labels = {key: label_value(value) for key, value in pack.pipeline.labels.items()}
    return {
        "name": pack.pipeline.instance_template,
        "description": f"sovaudit {__version__}: {pack.confidential.required_type} confidential VMs for the "
                       f"{pack.name} pipeline, no external IP, dedicated service account",
        "properties": {
            "machineType": machine_type,
            "confidentialInstanceConfig": {"enableConfidentialCompute": True,
                                           "confidentialInstanceType": pack.confidential.required_type},
            "scheduling": scheduling,
            # No accessConfigs: the VM has no external address (egress goes through the perimeter).
            "networkInterfaces": [{
                "network": f"projects/{pack.project}/global/networks/{pack.network.network}",
                "subnetwork": f"projects/{pack.project}/regions/{pack.region}/subnetworks/{pack.network.subnetwork}",
            }],
            "serviceAccounts": [{"email": pack.service_account, "scopes": list(SCOPES)}],
            "shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": True,
                                       "enableIntegrityMonitoring": True},
            "disks": [{"boot": True, "autoDelete": True, "type": "PERSISTENT",
                       "initializeParams": {"sourceImage": DEFAULT_BOOT_IMAGE,
                                            "diskSizeGb": str(options.boot_disk_gb)}}],
            "labels": labels,
        },
    }


def build_job(pack: Any, options: PlanOptions, run_id: str) -> dict[str, Any]:
    """The Batch job (REST ``Job``), one task per input, its VMs from the confidential template."""
    if not options.inputs:
        raise PlanError("--inputs: name at least one VCF (gs://bucket/object or a file)")
    tasks = options.tasks if options.tasks is not None else len(options.inputs)
    if tasks != len(options.inputs):
        raise PlanError(f"--tasks {tasks}: each task processes one input and {len(options.inputs)} were given")
    parallelism = options.parallelism if options.parallelism is not None else min(tasks, 10)
    if parallelism < 1 or parallelism > tasks:
        raise PlanError(f"--parallelism {parallelism}: must be between 1 and the task count ({tasks})")
    if not 0 <= options.retries <= 10:
        raise PlanError(f"--retries {options.retries}: Batch allows 0 to 10")
    table = check_node_table(pack, options.table) if options.table is not None else \
        f"{pack.project}.{pack.dataset}.{DEFAULT_TABLE}"
    if options.image is not None:
        check_image(options.image)
    variables = {
        "INPUT_URIS": json.dumps(list(options.inputs)),
        "SOVAUDIT_RUN_ID": run_id,
        "SOVAUDIT_PROJECT": pack.project,
        "SOVAUDIT_BQ_TABLE": table,
        "SOVAUDIT_BQ_LOCATION": pack.region,
        "SOVAUDIT_OUTPUT_BUCKET": pack.buckets.output,
    }
    if options.vep_command:
        variables["SOVAUDIT_VEP_COMMAND"] = options.vep_command
    if options.reference:
        variables["SOVAUDIT_REFERENCE"] = options.reference
    attestation = pack.confidential.in_guest_attestation
    if attestation.enabled:
        # CC-05: each task fetches a Confidential Computing token bound to the run (pipeline/attest.py).
        variables.update({"SOVAUDIT_ATTEST": "1", "SOVAUDIT_ATTEST_AUDIENCE": attestation.audience,
                          "SOVAUDIT_ATTEST_REGION": pack.region})
    labels = {key: label_value(value) for key, value in pack.pipeline.labels.items()}
    labels["sovaudit-run-id"] = label_value(run_id)
    template = f"projects/{pack.project}/global/instanceTemplates/{pack.pipeline.instance_template}"
    return {
        "taskGroups": [{
            "taskCount": str(tasks),
            "parallelism": str(parallelism),
            "taskSpec": {
                "runnables": [{"container": {"imageUri": options.image or default_image(pack),
                                             "entrypoint": "sovaudit", "commands": ["pipeline", "task"]}}],
                "computeResource": {"cpuMilli": str(options.cpu_milli), "memoryMib": str(options.memory_mib)},
                "maxRunDuration": _duration(options.max_run_duration),
                "maxRetryCount": options.retries,
                "lifecyclePolicies": [{"action": "FAIL_TASK",
                                       "actionCondition": {"exitCodes": [BAD_INPUT_EXIT_CODE]}}],
                "environment": {"variables": variables},
            },
        }],
        "allocationPolicy": {
            "location": {"allowedLocations": [f"regions/{pack.region}"]},
            "instances": [{"instanceTemplate": template}],
            "serviceAccount": {"email": pack.service_account},
            "labels": labels,
        },
        "labels": labels,
        "logsPolicy": {"destination": "CLOUD_LOGGING"},
    }


def build_plan(pack: Any, options: PlanOptions) -> Plan:
    run_id = check_run_id(options.run_id) if options.run_id is not None else new_run_id()
    return Plan(run_id=run_id, job_id=job_id_for(run_id), template_name=pack.pipeline.instance_template,
                template=build_template(pack, options), job=build_job(pack, options, run_id))
