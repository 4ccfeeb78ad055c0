"""The consortium key and keyed hashes (HMAC-SHA256) of identifiers.

Every identifier that leaves or enters distillguard's intel exchange is an
HMAC-SHA256 under a 32-byte key shared by the consortium, never the raw value.
The message is ``"distillguard-intel/v1|<namespace>|<canonical value>"``: the
namespace keeps an IP and a card that happen to share a string apart, and the
canonical form makes ``1.2.3.4``, `` 1.2.3.4 `` and ``1.2.3.4/32`` hash alike.

Key file: one line, 64 hex characters (``distillguard intel keygen``;
:func:`distillguard.privacy.keyed.load_key` reads it, as for the store's keyed identifiers). The
key id (first 16 hex of ``HMAC(key, "key-id")``) names a key in bundles and
logs without revealing it.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path

from distillguard.errors import UsageError
from distillguard.privacy.keyed import generate_key, load_key

__all__ = [
    "KEY_ENV",
    "HASH_KINDS",
    "generate_key",
    "load_key",
    "resolve_key",
    "key_id",
    "keyed_hash",
    "canonical",
    "namespace",
    "network_of",
]

KEY_ENV = "DISTILLGUARD_INTEL_KEY"
"""Environment variable holding the key itself (64 hex) or a path to a key file."""

_PREFIX = b"distillguard-intel/v1|"

# indicator kind -> hash namespace. client_ip, subnet and cidr are all networks
# (an IP is a /32 or /128), so one containment lookup matches all three.
HASH_KINDS = {
    "client_ip": "net",
    "subnet": "net",
    "cidr": "net",
    "asn": "asn",
    "payment_fingerprint": "payment_fingerprint",
    "user_agent": "user_agent",
    "client_fingerprint": "client_fingerprint",
    "email_domain": "email_domain",
    "template": "template",
    "entity": "entity",
}


def resolve_key(key_file: str | Path | None = None, env: str = KEY_ENV) -> bytes | None:
    """The key from ``key_file`` if given, else from ``$DISTILLGUARD_INTEL_KEY``.

    The variable holds either the 64 hex characters or a path to a key file.
    ``None`` when neither is set (intel matching is then off).
    """
    if key_file:
        return load_key(key_file)
    val = os.environ.get(env, "").strip()
    if not val:
        return None
    if re.fullmatch(r"[0-9a-fA-F]{64}", val):
        return bytes.fromhex(val)
    return load_key(val)


def key_id(key: bytes) -> str:
    """A public name of the key: 16 hex characters, does not reveal it."""
    return hmac.new(key, b"distillguard-intel/key-id", hashlib.sha256).hexdigest()[:16]


def namespace(kind: str) -> str:
    try:
        return HASH_KINDS[kind]
    except KeyError:
        raise UsageError(f"unknown indicator kind {kind!r} (one of {', '.join(sorted(HASH_KINDS))})") from None


def network_of(value: str, prefix: int | None = None) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IP, CIDR or (IP, prefix) as a network with host bits cleared."""
    v = value.strip()
    if prefix is not None:
        v = f"{v.split('/')[0]}/{prefix}"
    return ipaddress.ip_network(v, strict=False)


def canonical(kind: str, value: str) -> str:
    """The canonical text of a value before hashing (raises ValueError if malformed)."""
    ns = namespace(kind)
    v = str(value).strip()
    if ns == "net":
        return network_of(v).with_prefixlen
    if ns == "asn":
        m = re.fullmatch(r"(?i)(?:as)?\s*(\d+)", v)
        if not m:
            raise ValueError(f"not an ASN: {value!r}")
        return f"AS{int(m.group(1))}"
    if ns in ("payment_fingerprint", "email_domain"):
        return v.lower()
    if ns == "entity":
        return re.sub(r"[^0-9a-z]+", " ", v.lower()).strip()
    return v  # user_agent, client_fingerprint and template band keys: exact


@lru_cache(maxsize=64)
def _base(key: bytes, ns: str):
    return hmac.new(key, _PREFIX + ns.encode() + b"|", hashlib.sha256)


def keyed_hash(key: bytes, kind: str, value: str, *, canonical_value: bool = False) -> str:
    """HMAC-SHA256 (hex) of a value under the consortium key, namespaced by kind.

    ``HMAC(key, "distillguard-intel/v1|<namespace>|<canonical value>")``.
    """
    text = value if canonical_value else canonical(kind, value)
    h = _base(key, namespace(kind)).copy()
    h.update(text.encode("utf-8"))
    return h.hexdigest()
