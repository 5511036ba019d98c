"""The tool's own security: hostile cloud values stay text, no shell, private temp files, no leaked
credentials, and `--redact` pseudonymises people consistently.

Cloud behaviour comes from the simulator through the official clients; where a test needs the clients
to carry a bearer token (the simulator is reached anonymously), it makes google-auth's anonymous
credentials attach one, so a real `Authorization` header travels over loopback.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sovaudit.cli import main
from sovaudit.reports.redact import pseudonym
from sovaudit.simulator.server import SimServer

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("sovaudit", "audit", "pipeline", "reports", "policies", "simulator")
JOB = "preprocess-genomes-001"
IMG = "<img src=x onerror=alert(1)>"
CLOSE_SCRIPT = "</script><script>alert(2)</script>"
ALICE = "alice@hospital.example"
BOB = "bob.analyst@hospital.example"
FOREIGN_BUCKET = "fed-node-us-processed-scratch"  # the egress-project-bucket scenario's look-alike (in the node's own log)


def verify(sim: SimServer, *extra: str) -> Any:
    args = ["verify", "--policy", "us", "--target", sim.url, "--job", JOB, "--api-deadline", "2", *extra]
    return CliRunner().invoke(main, args)


def run_dir(out: Path) -> Path:
    (found,) = out.glob("run-*")
    return found


def _foreign_writes(sim: SimServer) -> Iterator[dict[str, Any]]:
    for entry in sim.state.log_entries:
        payload = entry.get("protoPayload") or {}
        if FOREIGN_BUCKET in str(payload.get("resourceName", "")):
            yield payload


def _public_vms(sim: SimServer) -> Iterator[dict[str, Any]]:
    for vm in sim.state.instances.values():
        if any(nic.get("accessConfigs") for nic in vm.get("networkInterfaces") or []):
            yield vm


# -- 1. the HTML report shows cloud values as text -----------------------------------------------

class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _hostile_node(sim: SimServer) -> None:
    """Put markup into what the cloud returns: a VM name and label, an audit-logged object name."""
    with sim.state.lock:
        for vm in _public_vms(sim):
            vm["name"] = vm["name"] + IMG
            vm.setdefault("labels", {})["team"] = IMG
        for payload in _foreign_writes(sim):
            payload["resourceName"] = payload["resourceName"] + IMG + CLOSE_SCRIPT


def test_html_report_shows_hostile_cloud_values_as_text_and_has_no_script(
        sim_factory: Callable[..., SimServer], tmp_path: Path) -> None:
    sim = sim_factory(scenarios=["egress-project-bucket", "vm-public-ip"])
    _hostile_node(sim)
    result = verify(sim, "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    run = run_dir(tmp_path)
    messages = [f["message"] for c in json.loads((run / "result.json").read_text())["controls"] for f in c["findings"]]
    assert any(IMG in m and "external address" in m for m in messages), "the VM name did not reach the result"
    assert any(CLOSE_SCRIPT in m and FOREIGN_BUCKET in m for m in messages), "the log text did not reach the result"

    html = (run / "report.html").read_text()
    page = _Page()
    page.feed(html)
    assert "script" not in page.tags and "img" not in page.tags
    assert not [name for name, _ in page.attributes if name.startswith("on")]
    assert not [value for _, value in page.attributes if value.strip().lower().startswith("javascript:")]
    text = "".join(page.text)
    assert IMG in text and CLOSE_SCRIPT in text  # shown, as text
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;/script&gt;" in html
    assert "default-src 'none'" in html  # and a browser would refuse any script anyway

    # The machine-readable reports carry the same values as data, still well-formed.
    junit_text = " ".join(" ".join([e.text or "", *e.attrib.values()])
                          for e in ET.parse(run / "junit.xml").getroot().iter())
    assert IMG in junit_text and CLOSE_SCRIPT in junit_text
    sarif = json.loads((run / "results.sarif").read_text())
    assert any(IMG in r["message"]["text"] for r in sarif["runs"][0]["results"])


# -- 2. no shell, argument lists, private temporary files -----------------------------------------

FORBIDDEN_CALLS = {
    "os.system": "runs a shell",
    "os.popen": "runs a shell",
    "subprocess.getoutput": "runs a shell",
    "subprocess.getstatusoutput": "runs a shell",
    "tempfile.mktemp": "a predictable name another user can claim first; use mkstemp/mkdtemp",
    "pickle.load": "unpickling runs code",
    "pickle.loads": "unpickling runs code",
    "yaml.unsafe_load": "constructs arbitrary objects",
    "yaml.full_load": "constructs arbitrary objects",
    "eval": "runs text as code",
    "exec": "runs text as code",
}
SUBPROCESS_RUNNERS = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
                      "subprocess.check_output"}
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm")


def _aliases(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            ids.add(id(body[0].value))
    return ids


def scan_source(source: str, name: str) -> list[str]:
    """Every unsafe pattern in one module, as `name:line: what (why)`."""
    tree = ast.parse(source, name)
    aliases = _aliases(tree)
    docstrings = _docstrings(tree)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = _dotted(node.func, aliases)
            if called in FORBIDDEN_CALLS:
                problems.append(f"{name}:{node.lineno}: {called} ({FORBIDDEN_CALLS[called]})")
            if called == "yaml.load" and not any(
                    k.arg == "Loader" and _dotted(k.value, aliases).endswith(("SafeLoader", "CSafeLoader"))
                    for k in node.keywords):
                problems.append(f"{name}:{node.lineno}: yaml.load without SafeLoader (constructs arbitrary objects)")
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    problems.append(f"{name}:{node.lineno}: shell={ast.unparse(keyword.value)} (pass an argument list)")
            if called in SUBPROCESS_RUNNERS and node.args and isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.BinOp):
                problems.append(f"{name}:{node.lineno}: {called} given a command string (pass an argument list)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if any(node.value == d or node.value.startswith(d + "/") for d in SHARED_TEMP):
                problems.append(f"{name}:{node.lineno}: hard-coded shared temp path {node.value!r} "
                                "(use tempfile.mkdtemp/TemporaryDirectory)")
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "tempfile", "pickle"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in FORBIDDEN_CALLS:
                    problems.append(f"{name}:{node.lineno}: imports {node.module}.{alias.name}")
    return problems


def _package_files() -> list[Path]:
    files = [p for folder in PACKAGE_DIRS for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 50, "the scan found too few modules to mean anything"
    return files


def test_package_never_uses_a_shell_and_makes_temporary_files_privately() -> None:
    problems = [p for path in _package_files()
                for p in scan_source(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert problems == []


@pytest.mark.parametrize("snippet", [
    "import os\nos.system('ls')",
    "import subprocess as sp\nsp.run('ls -l', shell=True)",
    "import subprocess\nsubprocess.Popen(f'bcftools {x}')",
    "from subprocess import check_output\ncheck_output(cmd, shell=flag)",
    "import tempfile\ntempfile.mktemp()",
    "from tempfile import mktemp",
    "import yaml\nyaml.load(text)",
    "open('/tmp/sovaudit-key.pem', 'w')",
    "eval(expression)",
])
def test_the_scan_catches_each_unsafe_pattern(snippet: str) -> None:
    assert scan_source(snippet, "snippet.py"), snippet


def test_the_scan_accepts_argument_lists_and_private_temp_dirs() -> None:
    safe = ("import subprocess, tempfile, yaml\n"
            "subprocess.run(['bcftools', 'norm', path], check=True, shell=False)\n"
            "with tempfile.TemporaryDirectory(prefix='sovaudit-') as d: pass\n"
            "yaml.load(text, Loader=yaml.SafeLoader)\n"
            "def f():\n    '''Writes under /tmp only through tempfile.'''\n")
    assert scan_source(safe, "safe.py") == []


# -- 3. credentials never reach the output -----------------------------------------------------------

TOKEN = "ya29.FAKE-sovaudit-test-token-8c1f0e"


@pytest.fixture
def bearer_token(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every client request carries `Authorization: Bearer TOKEN`; the list records each one sent."""
    from google.auth.credentials import AnonymousCredentials

    sent: list[str] = []

    def before_request(self: Any, request: Any, method: str, url: str, headers: dict[str, str]) -> None:
        headers["authorization"] = f"Bearer {TOKEN}"
        sent.append(url)

    monkeypatch.setattr(AnonymousCredentials, "before_request", before_request)
    for variable in ("GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN", "SOVAUDIT_SIGNING_KEY_PASSWORD"):
        monkeypatch.setenv(variable, TOKEN)
    return sent


def test_a_bearer_token_is_never_written_to_the_bundle_or_printed(
        sim_factory: Callable[..., SimServer], tmp_path: Path, bearer_token: list[str]) -> None:
    # api-unavailable makes errors print too: error paths are where request details tend to leak.
    sim = sim_factory(scenarios=["egress-project-bucket", "api-unavailable"])
    result = verify(sim, "--out", str(tmp_path), "--format", "json", "--bundle")
    assert result.exit_code == 1, result.output
    assert len(bearer_token) > 20, "the clients did not send the token: the test would prove nothing"
    assert "could not" in result.stderr or "ERROR" in result.stdout
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".tar.gz") for p in files) and len(files) > 20
    for path in files:
        data = path.read_bytes()
        if path.name.endswith(".tar.gz"):
            data = gzip.decompress(data)
        assert TOKEN.encode() not in data, path
        assert b"ya29." not in data and b"Bearer" not in data, path


def test_the_recorder_keeps_no_header_and_no_credential_in_the_url(sim: SimServer) -> None:
    import requests

    from sovaudit.audit.recorder import Recorder

    recorder = Recorder(deadline_seconds=1)
    session = recorder.hook_session(requests.Session())
    url = sim.url.replace("://", "://operator:hunter2@") + "/storage/v1/b/fed-node-us-raw-vcfs"
    recorder.call("storage.bucket:x", "storage", "buckets.get", lambda: session.get(
        url, params={"key": TOKEN, "access_token": TOKEN, "projection": "full"},
        headers={"Authorization": f"Bearer {TOKEN}", "x-goog-api-key": TOKEN}, timeout=5).raise_for_status())
    (item,) = recorder.log()
    assert item.status == 200 and item.request["params"]["projection"] == "full"
    recorded = json.dumps(item.manifest_entry())
    assert TOKEN not in recorded and "hunter2" not in recorded and "operator" not in recorded
    assert item.request["params"]["key"] == "<redacted>"


# -- 4. --redact: people become stable pseudonyms ------------------------------------------------------

def _people_in_the_logs(sim: SimServer) -> None:
    """The foreign write is by Alice; the VPC-SC denial by Bob (a person, not a service account)."""
    with sim.state.lock:
        for payload in _foreign_writes(sim):
            payload.setdefault("authenticationInfo", {})["principalEmail"] = ALICE
        for entry in sim.state.log_entries:
            payload = entry.get("protoPayload") or {}
            if "policy" in str(entry.get("logName", "")) and "authenticationInfo" in payload:
                payload["authenticationInfo"]["principalEmail"] = BOB


REPORT_FILES = ("result.json", "report.html", "junit.xml", "results.sarif", "manifest.json", "oscal-ar.json",
                "oscal-poam.json")


def test_redact_replaces_people_with_the_same_pseudonym_in_every_run_and_file(
        sim_factory: Callable[..., SimServer], tmp_path: Path) -> None:
    sim = sim_factory(scenarios=["egress-project-bucket", "vpcsc-violation"])
    _people_in_the_logs(sim)
    plain = verify(sim, "--out", str(tmp_path / "plain"))
    assert plain.exit_code == 1, plain.output
    plain_result = (run_dir(tmp_path / "plain") / "result.json").read_text()
    assert ALICE in plain_result and BOB in plain_result, "the people never reached the report"

    pseudonyms = []
    for name in ("first", "second"):
        redacted = verify(sim, "--out", str(tmp_path / name), "--redact")
        assert redacted.exit_code == 1, redacted.output
        run = run_dir(tmp_path / name)
        for file in REPORT_FILES:
            text = (run / file).read_text()
            assert ALICE not in text and BOB not in text and "hospital.example" not in text, (name, file)
        result_text, html = (run / "result.json").read_text(), (run / "report.html").read_text()
        for person in (ALICE, BOB):
            assert pseudonym(person) in result_text and pseudonym(person) in html, (name, person)
        assert "batch-runner@fed-node-us.iam.gserviceaccount.com" in result_text  # SEC-03's subject stays
        # Evidence stays raw: it is what Google sent, bound by sha256 to the manifest and the signature.
        assert any(ALICE.encode() in p.read_bytes() for p in (run / "evidence").iterdir())
        pseudonyms.append(_pseudonyms(result_text))
    assert pseudonyms[0] == pseudonyms[1] == {pseudonym(ALICE), pseudonym(BOB)}
    assert pseudonym(ALICE) != pseudonym(BOB)


def _pseudonyms(text: str) -> set[str]:
    return set(re.findall(r"principal-[0-9a-f]{8}", text))


# -- 5. the terminal shows hostile text, it does not obey it ----------------------------------------

MARKUP_AND_ESCAPES = "[/bold][link=http://evil.example]x\x1b[2J\x1b]8;;http://evil.example\x07\r"


def test_verify_summary_shows_rich_markup_and_terminal_escapes_from_the_cloud_as_text(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["egress-project-bucket"])
    with sim.state.lock:
        for payload in _foreign_writes(sim):
            payload["resourceName"] = payload["resourceName"] + MARKUP_AND_ESCAPES
    result = verify(sim)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, repr(result.exception)
    assert "SEC-04" in result.stdout and "verdict: FAIL" in result.stdout
    for raw in ("\x1b", "\x07", "\r"):
        assert raw not in result.stdout and raw not in result.stderr
    assert "\\x1b" in result.stdout.replace("│", "").replace(" ", "").replace("\n", "")


def test_report_verify_prints_a_hostile_file_name_escaped(tmp_path: Path) -> None:
    from sovaudit.reports.attestation import build_statement, envelope_line, sign_statement
    from sovaudit.reports.keys import generate_key, load_signing_key

    run = tmp_path / "run-r1"  # a bundle bound to its statement (name, manifest, result), so only the note differs
    run.mkdir()
    files = {"result.json": b'{"run_id": "r1", "controls": []}', "manifest.json": b'{"run_id": "r1", "evidence": []}'}
    for name, data in files.items():
        (run / name).write_bytes(data)
    statement = build_statement({"run_id": "r1", "controls": []},
                                [(name, hashlib.sha256(data).hexdigest()) for name, data in files.items()])
    pair = generate_key(tmp_path / "keys", "ed25519")
    _, envelope = sign_statement(statement, [load_signing_key(pair.private_path)])
    (run / "attestation.intoto.jsonl").write_bytes(envelope_line(envelope))
    # A file no subject covers, named to move the cursor up and erase the line above it.
    (run / "x\x1b[1A\x1b[2K\rOK.json").write_text("{}")
    result = CliRunner().invoke(main, ["report", "verify", str(run / "attestation.intoto.jsonl"),
                                       "--key", str(pair.public_path)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "NOTE x\\x1b[1A\\x1b[2K\\rOK.json is in the bundle but not covered" in result.stdout
