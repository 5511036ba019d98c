"""`sovaudit demo`: the whole product on the embedded simulator, in one command.

It starts a sovereign node on loopback, verifies the node's finished pipeline job with every control
(probes included), writes the signed evidence bundle with a throwaway key, and says how to check it.
`--scenario` injects a violation so one can watch it being caught.
"""

from __future__ import annotations

from pathlib import Path

import click

DEMO_JOB = "preprocess-genomes-001"


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="sovaudit-demo", show_default=True,
              help="Where the run bundle and the throwaway key go.")
@click.option("--scenario", "scenarios", multiple=True,
              help="Inject a violation (see `sovaudit sim scenarios`); repeatable.")
@click.option("--node", type=click.Choice(["us", "eu"]), default="us", show_default=True)
def demo(out_dir: str, scenarios: tuple[str, ...], node: str) -> None:
    """Run verify against the embedded simulator and write a signed bundle."""
    from sovaudit.simulator import start as start_simulator
    from sovaudit.audit.commands import _err, _load_pack, print_summary, run_verify, write_outputs
    from sovaudit.cloud import Target
    from sovaudit.reports.signing import throwaway_signer, write_public_key
    from sovaudit.simulator.node import NodeFileError

    out = Path(out_dir)
    pack = _load_pack(node, None)
    try:
        server = start_simulator(node=node, scenarios=list(scenarios))
    except NodeFileError as error:
        _err(str(error))
        raise SystemExit(2) from error
    with server:
        _err(f"simulator for node {node!r} listening on {server.url}"
             + (f" with scenario(s) {', '.join(scenarios)}" if scenarios else ""))
        target = Target.parse(server.url)
        result, collected = run_verify(pack=pack, target=target, job_name=DEMO_JOB, posture_only=False,
                                       probes=True, since=None, until=None, api_deadline=5.0)
        # The private half lives only in memory: the demo's bundle can be verified, never re-signed.
        signer = throwaway_signer("ed25519")
        run_dir = write_outputs(out, result, collected, signer=signer, bundle=False, redact=False)
        public_key = write_public_key(signer, run_dir.parent / f"{run_dir.name}.pub.pem")
    print_summary(result.to_json())
    click.echo(f"\nevidence bundle: {run_dir}")
    click.echo(f"report:          {run_dir / 'report.html'}")
    click.echo("verify the signature and every file digest:")
    click.echo(f"  sovaudit report verify {run_dir / 'attestation.intoto.jsonl'} --key {public_key}")
    click.echo(f"re-evaluate offline:\n  sovaudit verify --evidence {run_dir} --policy {node}")
    raise SystemExit(result.exit_code)
