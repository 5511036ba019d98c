"""`sovaudit demo`: the whole product on the embedded simulator, in one command.

It starts a sovereign node on loopback whose Batch runs the real task code, uploads a small
synthetic cohort, runs the genomic preprocessing pipeline as a Batch job on Confidential VMs,
verifies that job with every control (probes and INT-01 included), writes the signed evidence bundle
with a throwaway key, and says how to check it.

`--scenario` injects a violation into the node's recorded job `preprocess-genomes-001` (that is what
scenarios patch), so with a scenario the demo verifies that job instead of running a new one.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from sovaudit import interrupts, progress
from sovaudit.progress import quiet_option

RECORDED_JOB = "preprocess-genomes-001"


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="sovaudit-demo", show_default=True,
              help="Where the inputs, the run bundle and the public key go.")
@click.option("--scenario", "scenarios", multiple=True,
              help="Inject a violation into the recorded job (see `sovaudit sim scenarios`); repeatable.")
@click.option("--node", type=click.Choice(["us", "eu"]), default="us", show_default=True)
@click.option("--files", type=click.IntRange(1, 50), default=3, show_default=True, help="VCFs in the cohort.")
@click.option("--records", type=click.IntRange(10, 1_000_000), default=3000, show_default=True,
              help="Records per synthetic VCF.")
@click.option("--tsa", "tsa_url", help="RFC 3161 timestamp authority URL: give the bundle trusted time "
                                      "(an unreachable TSA is exit 2 and no bundle is written).")
@interrupts.guarded("before a verdict; nothing was attested and no bundle was written")
@quiet_option
def demo(out_dir: str, scenarios: tuple[str, ...], node: str, files: int, records: int,
         tsa_url: str | None = None) -> None:
    """Run the pipeline on the embedded simulator, verify it, and write a signed bundle."""
    from sovaudit.audit.commands import (
        _check_out_dir,
        _err,
        _load_pack,
        print_summary,
        run_verify,
        write_outputs,
    )
    from sovaudit.cloud import Target
    from sovaudit.pipeline.simrunner import run_task
    from sovaudit.reports.signing import throwaway_signer, write_public_key
    from sovaudit.simulator import start as start_simulator
    from sovaudit.simulator.node import NodeFileError

    _check_out_dir(out_dir)
    if tsa_url:
        from sovaudit.audit.commands import _check_tsa

        _check_tsa(tsa_url, signed=True)  # the demo always signs
    out = Path(out_dir)
    interrupts.own_output(out)
    try:
        policy = _scenario_policy(node, scenarios, out)
        server = start_simulator(node=node, scenarios=list(scenarios), task_runner=run_task)
    except (NodeFileError, ValueError) as error:
        _err(str(error))
        raise SystemExit(2) from error
    pack = _load_pack(policy, None)
    started = time.monotonic()
    with server:
        progress.say(f"simulator for node {node!r} listening on {server.url}"
             + (f" with scenario(s) {', '.join(scenarios)}" if scenarios else ""))
        target = Target.parse(server.url)
        job_name = RECORDED_JOB if scenarios else _run_pipeline(target, pack, out, files, records)
        result, collected = run_verify(pack=pack, target=target, job_name=job_name, posture_only=False,
                                       probes=True, since=None, until=None, api_deadline=5.0)
        # The private half lives only in memory: the demo's bundle can be verified, never re-signed.
        signer = throwaway_signer("ed25519")
        from sovaudit.reports.timestamp import TimestampError

        try:
            run_dir = write_outputs(out, result, collected, signer=signer, bundle=False, redact=False,
                                    tsa_url=tsa_url, policy_file=pack.path)
        except TimestampError as error:
            _err(f"no trusted time, so no bundle was written: {error}")
            raise SystemExit(2) from error
        public_key = write_public_key(signer, run_dir.parent / f"{run_dir.name}.pub.pem")
        interrupts.done_writing()
    print_summary(result.to_json())
    click.echo(f"\ndemo took {time.monotonic() - started:.0f}s; evidence bundle: {run_dir}")
    click.echo(f"report:          {run_dir / 'report.html'}")
    click.echo("verify the signature and every file digest:")
    click.echo(f"  sovaudit report verify {run_dir / 'attestation.intoto.jsonl'} --key {public_key}")
    # With --key the re-evaluation checks the attestation first, so an edited bundle is refused, not reproduced.
    click.echo(f"re-evaluate offline:\n  sovaudit verify --evidence {run_dir} --policy {policy} --key {public_key}")
    raise SystemExit(result.exit_code)


def _scenario_policy(node: str, scenarios: tuple[str, ...], out: Path) -> str:
    """The pack to judge with: the node's own, or the one a scenario's `policy:` block amends
    (a waiver, a stricter confidential type), written beside the bundle so the reader sees it."""
    from sovaudit.simulator.matrix import scenario_policy_file
    from sovaudit.simulator.node import load_scenario

    amended = []
    for name in scenarios:
        out.mkdir(parents=True, exist_ok=True)
        path = scenario_policy_file(load_scenario(name), node, out)
        if path is not None:
            amended.append(path)
    if len(amended) > 1:
        raise ValueError(f"scenarios {', '.join(scenarios)} each amend the policy pack; combine at most one of them")
    return str(amended[0]) if amended else node


def _run_pipeline(target: object, pack: object, out: Path, files: int, records: int) -> str:
    """Generate and upload the cohort, run the Batch job to its end; the job's name, or exit."""
    from sovaudit.audit.commands import _err
    from sovaudit.pipeline.submit import run_pipeline, upload_inputs
    from sovaudit.pipeline.synth import demo_inputs

    interrupts.own_output(out / "inputs")
    paths = demo_inputs(out / "inputs", count=files, records=records)
    progress.say(f"generated {len(paths)} synthetic VCFs ({records} records each) in {out / 'inputs'}")
    uris = upload_inputs(target, pack, paths)
    progress.say(f"uploaded to gs://{pack.buckets.input}/ (the node's raw bucket)")  # type: ignore[attr-defined]
    plan, final = run_pipeline(target, pack, uris, timeout=300, poll_seconds=0.5,
                               on_update=lambda s: progress.say(f"job {s.state}: {s.counts}"),
                               on_log=lambda line: progress.say(f"  task log: {line}"))
    if final.state != "SUCCEEDED":
        for event in final.events:
            _err(f"  {event}")
        _err(f"the pipeline job ended {final.state}; verifying it anyway (its controls will say why)")
    return str(plan.job_id)
