"""A real RFC 3161 TSA on loopback for tests: `openssl ts -reply` behind a tiny HTTP handler.

A throwaway root CA issues the TSA certificate with the critical timeStamping EKU, as a qualified
TSA's would. Nothing here fakes our own code: the product POSTs a real query and gets a real reply.
"""

from __future__ import annotations

import datetime
import http.server
import subprocess
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY_OID = "1.2.3.4.1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, cn: str = "Test Root CA") -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / f"{cn.replace(' ', '-').lower()}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


class LocalTsa:
    """Start with `LocalTsa(tmp_path)`; `url`, `root_pem`; `close()` stops the server."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.root_pem, ca_key, ca_cert = make_ca(directory)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(_name("Test TSA")).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
                .sign(ca_key, hashes.SHA256()))
        (directory / "tsa.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / "tsa.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
        (directory / "tsaserial").write_text("01\n")
        (directory / "tsa.cnf").write_text(f"""[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = {directory}/tsaserial
signer_cert = {directory}/tsa.crt
signer_key = {directory}/tsa.key
signer_digest = sha256
default_policy = {POLICY_OID}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_alg = sha256
""")
        self.requests = 0
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                tsa.requests += 1
                with tempfile.TemporaryDirectory() as work:
                    query = Path(work) / "q.tsq"
                    reply = Path(work) / "r.tsr"
                    query.write_bytes(body)
                    done = subprocess.run(["openssl", "ts", "-reply", "-config", str(tsa.dir / "tsa.cnf"),
                                           "-queryfile", str(query), "-out", str(reply)],
                                          capture_output=True, check=False)
                    if done.returncode != 0 or not reply.exists():
                        self.send_response(400)
                        self.end_headers()
                        return
                    data = reply.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsr"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
