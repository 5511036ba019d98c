"""Signing keys: generate them, load them with the checks a careless setup needs, name them.

A key is named by its keyid: the hex sha256 of the public key's DER SubjectPublicKeyInfo. Anyone can
recompute that with `openssl pkey -pubin -outform DER | sha256sum`, so a regulator can match the
envelope's keyid to the public key they were given without trusting our code.

Only Ed25519 and ECDSA P-256 are accepted: both are supported by openssl's command line for the
offline recipe, and P-256 is what Cloud KMS signs with (EC_SIGN_P256_SHA256).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from securesystemslib.signer import CryptoSigner, SSlibKey

KEY_TYPES = ("ed25519", "ecdsa-p256")
PASSWORD_ENV = "SOVAUDIT_SIGNING_KEY_PASSWORD"


class KeyFileError(Exception):
    """A key file cannot be used; the message names the file and says how to fix it."""


def key_id(public_key: PublicKeyTypes) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def key_type_name(key: PublicKeyTypes | PrivateKeyTypes) -> str:
    """'ed25519', 'ecdsa-p256', or a description of an unsupported key."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "ecdsa-p256" if isinstance(key.curve, ec.SECP256R1) else f"ecdsa-{key.curve.name}"
    return type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "").lower() or "unknown"


def sslib_public_key(public_key: PublicKeyTypes, source: str = "the key") -> SSlibKey:
    """The securesystemslib key for a supported public key, carrying sovaudit's keyid."""
    kind = key_type_name(public_key)
    if kind not in KEY_TYPES:
        raise KeyFileError(
            f"{source} holds a key of type {kind}; sovaudit signs and verifies only {' or '.join(KEY_TYPES)} keys "
            "(make one with `sovaudit keys generate`)"
        )
    return SSlibKey.from_crypto(public_key, keyid=key_id(public_key))


@dataclass(frozen=True)
class GeneratedKey:
    private_path: Path
    public_path: Path
    key_id: str
    key_type: str


def generate_key(out_dir: Path, key_type: str = "ed25519", name: str | None = None) -> GeneratedKey:
    """Write a new private key (PKCS#8 PEM, mode 0600) and its public half (`*.pub.pem`).

    Refuses to overwrite: replacing a signing key silently would orphan every report signed with it.
    """
    if key_type not in KEY_TYPES:
        raise KeyFileError(f"unknown key type {key_type!r}; choose {' or '.join(KEY_TYPES)}")
    private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
    base = name or f"sovaudit-{key_type}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", base):
        raise KeyFileError(f"key name {base!r} must be a plain file name (letters, digits, . _ -)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot create the key directory {out_dir}: {exc.strerror or exc}") from exc
    private_path = out_dir / f"{base}.pem"
    public_path = out_dir / f"{base}.pub.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; choose another --out directory or move the old key away")
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # O_EXCL + mode at creation: the private key is never readable by others, not even briefly.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    os.chmod(private_path, 0o600)  # the umask may have removed bits, never added; be explicit anyway
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(public_pem)
    return GeneratedKey(private_path, public_path, key_id(private_key.public_key()), key_type)


def _read(path: Path, role: str) -> bytes:
    if not path.exists():
        hint = " (create one with `sovaudit keys generate --out DIR`)" if role == "signing key" else ""
        raise KeyFileError(f"{role} {path} does not exist{hint}")
    if not path.is_file():
        raise KeyFileError(f"{role} {path} is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {role} {path}: {exc.strerror}") from exc


def load_signing_key(path: Path, password: bytes | None = None) -> CryptoSigner:
    """A securesystemslib signer for a private key file, refusing anything unsafe or unusable.

    The password, when the PEM is encrypted, comes from the argument or $SOVAUDIT_SIGNING_KEY_PASSWORD.
    """
    data = _read(path, "signing key")
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise KeyFileError(
            f"signing key {path} holds a public key; --sign-key needs the private half "
            f"(the file without .pub, written by `sovaudit keys generate`)"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"signing key {path} is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`"
        )
    if password is None and os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV].encode("utf-8")
    try:
        private_key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        if password is None:
            raise KeyFileError(f"signing key {path} is encrypted; set {PASSWORD_ENV}") from exc
        raise KeyFileError(f"signing key {path} is not encrypted but a password was given") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"signing key {path} is not a PEM private key sovaudit can read (or the password is wrong): "
            f"{pem_reason(exc)}"
        ) from exc
    public = sslib_public_key(private_key.public_key(), f"signing key {path}")
    return CryptoSigner(private_key, public)


def pem_reason(exc: Exception) -> str:
    """cryptography's complaint without its boilerplate ("Unable to load PEM file. See https://... for more
    details."): the part that says what is wrong with the user's file."""
    import re

    text = re.sub(r"Unable to load PEM file\. See \S+ for more details\.\s*", "", str(exc)).strip()
    return text or "the file is not PEM (-----BEGIN ...----- / -----END ...----- around base64)"


def load_public_key(path: Path) -> SSlibKey:
    """A verification key from a PEM public key file (`*.pub.pem`, or the PEM Cloud KMS returns)."""
    data = _read(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(
            f"public key {path} holds a private key; give the public half (*.pub.pem) and keep the private key secret"
        )
    try:
        public_key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"public key {path} is not a PEM public key: {pem_reason(exc)}") from exc
    return sslib_public_key(public_key, f"public key {path}")


def public_key_pem(key: SSlibKey) -> bytes:
    """The PEM of a securesystemslib key (Ed25519 keys are stored raw there)."""
    return crypto_public_key(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def crypto_public_key(key: SSlibKey) -> PublicKeyTypes:
    if key.keytype == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.keyval["public"]))
    return serialization.load_pem_public_key(key.keyval["public"].encode("utf-8"))
