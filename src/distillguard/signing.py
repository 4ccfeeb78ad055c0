"""Ed25519 signing of evidence: the audit chain head and case-file manifests.

Hashes alone prove nothing against someone who can rewrite a file and
recompute them by the published rule; a signature under a key kept outside
the store does. ``distillguard keys init`` writes:

- ``signing.key``: the private key (PKCS#8 PEM, mode 0600), in the keys
  folder (``--dir``, ``$DISTILLGUARD_KEYS`` or ``~/.config/distillguard``),
  never in the store;
- ``signing.pub``: the public key (SubjectPublicKeyInfo PEM) to hand to
  whoever verifies (a court, a partner, the case-verify step).

The key id is the first 16 hex characters of SHA-256 of the raw public key.
"""
from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from distillguard.errors import UsageError

__all__ = ["KEYS_ENV", "keys_dir", "init_keys", "load_private", "load_public", "public_key_of", "key_id", "sign",
           "verify", "public_pem", "Signer", "signer"]

KEYS_ENV = "DISTILLGUARD_KEYS"
PRIVATE = "signing.key"
PUBLIC = "signing.pub"


def keys_dir(folder: str | Path | None = None) -> Path:
    """The keys folder: ``folder``, else ``$DISTILLGUARD_KEYS``, else ``~/.config/distillguard``."""
    if folder:
        return Path(folder)
    if os.environ.get(KEYS_ENV):
        return Path(os.environ[KEYS_ENV])
    return Path.home() / ".config" / "distillguard"


def init_keys(folder: str | Path | None = None, force: bool = False) -> tuple[Path, Path]:
    """Make a new Ed25519 key pair; refuses to overwrite one (a lost private key orphans every signature)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    d = keys_dir(folder)
    priv, pub = d / PRIVATE, d / PUBLIC
    if priv.exists() and not force:
        raise UsageError(f"{priv} exists: keep it (signatures depend on it) or pass --force to replace it")
    try:
        d.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        pub.write_bytes(public_pem(key.public_key()))
    except OSError as exc:
        raise UsageError(f"cannot write keys in {d}: {exc.strerror or exc}") from None
    with _SIGNERS_LOCK:
        _SIGNERS.pop(priv, None)  # this process signs with the new pair from now on
    return priv, pub


def public_pem(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(folder: str | Path | None = None):
    """The private key of the keys folder, or None when there is none (evidence is then unsigned)."""
    from cryptography.hazmat.primitives import serialization

    p = keys_dir(folder) / PRIVATE
    if not p.is_file():
        return None
    try:
        return serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read signing key {p}: {exc}") from None


def load_public(path: str | Path | None = None):
    """A public key from a PEM file: ``path``, else the keys folder's ``signing.pub``; None when absent."""
    from cryptography.hazmat.primitives import serialization

    p = Path(path) if path else keys_dir() / PUBLIC
    if not p.is_file():
        if path:
            raise UsageError(f"{p}: no such public key file")
        return None
    try:
        return serialization.load_pem_public_key(p.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read public key {p}: {exc}") from None


def public_key_of(pem: str | bytes):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)


def key_id(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """A private key with what every signature repeats (its key id, its public PEM), worked out once."""

    key: object
    key_id: str
    public_pem: bytes

    @classmethod
    def of(cls, private_key) -> "Signer":
        return cls(private_key, key_id(private_key.public_key()), public_pem(private_key.public_key()))

    def sign(self, message: bytes) -> dict:
        """``{"alg": "ed25519", "key_id": ..., "signature": base64}`` of ``message``."""
        return {"alg": "ed25519", "key_id": self.key_id, "signature": base64.b64encode(self.key.sign(message)).decode()}


_SIGNERS: dict[Path, Signer] = {}
_SIGNERS_LOCK = threading.Lock()


def signer(folder: str | Path | None = None) -> Signer | None:
    """The keys folder's signer, read from disk once per process (the audit log signs on every append).

    None while the folder has no key, which is looked for again on the next
    call (``keys init`` may come later). A key replaced on disk by another
    process is used after a restart; ``init_keys`` in this process takes
    effect at once.
    """
    path = keys_dir(folder) / PRIVATE
    with _SIGNERS_LOCK:
        cached = _SIGNERS.get(path)
        if cached is None:
            key = load_private(folder)
            if key is None:
                return None
            cached = _SIGNERS[path] = Signer.of(key)
        return cached


def sign(private_key, message: bytes) -> dict:
    """``{"alg": "ed25519", "key_id": ..., "signature": base64}`` of ``message``."""
    return Signer.of(private_key).sign(message)


def verify(public_key, message: bytes, sig: dict | None) -> str | None:
    """None when ``sig`` is a valid signature of ``message`` by ``public_key``, else why not."""
    from cryptography.exceptions import InvalidSignature

    if not sig or sig.get("alg") != "ed25519" or not isinstance(sig.get("signature"), str):
        return "no signature"
    if sig.get("key_id") != key_id(public_key):
        return f"signed by key {sig.get('key_id')}, not the trusted key {key_id(public_key)}"
    try:
        public_key.verify(base64.b64decode(sig["signature"], validate=True), message)
    except (InvalidSignature, ValueError):
        return "the signature does not match the content"
    return None
