"""Keyed hashes (HMAC-SHA256) of stored identifiers, computed alike in Python and in DuckDB SQL.

With ``store.identifiers: hashed`` the store keeps ``h:<hash>`` instead of a
payment fingerprint or e-mail domain, and ``h:<subnet hash>:<IP hash>`` instead
of a client IP: linkage compares values, so equal inputs still link, and the
/24 (IPv4) or /48 (IPv6) subnet survives as its own hash. The key (64 hex
characters, ``distillguard intel keygen`` makes one) lives outside the store.
Values already in the hashed form are left as they are, so hashing twice is
harmless (the service's journal hashes before the store's insert sees them).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

from distillguard.errors import UsageError

__all__ = ["ACCOUNT_FIELDS", "HASHED_IP", "generate_key", "load_key", "hash_value", "hash_ip", "value_sql", "ip_sql", "subnet_of"]

ACCOUNT_FIELDS = ("payment_fingerprint", "email_domain")
V4_PREFIX = r"^(\d+\.\d+\.\d+)\.\d+$"
V6_PREFIX = r"^([0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f]*):"
"""The /24 and /48 prefixes, as the linkage derives subnets (distillguard.link.memberships)."""
HASHED_IP = r"^h:([0-9a-f]{16})?:[0-9a-f]{16}$"
"""A hashed client IP; group 1 is its subnet's hash (absent when the text was no IP)."""
_HEX = 16


def generate_key() -> str:
    """A new random 32-byte key as 64 hex characters."""
    return secrets.token_hex(32)


def _parse_key(text: str, where: str) -> bytes:
    t = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", t):
        raise UsageError(f"{where}: a key file holds 64 hex characters (make one with `distillguard intel keygen`)")
    return bytes.fromhex(t)


def load_key(path: str | Path) -> bytes:
    """Read a key file (64 hex characters; surrounding whitespace ignored)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read key file {p}: {exc.strerror or exc}") from exc
    return _parse_key(text, str(p))


def _mac(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}|{value}".encode(), hashlib.sha256).hexdigest()[:_HEX]


def hash_value(value: str, key: bytes, kind: str = "value") -> str:
    """``h:<hash>`` of a payment fingerprint or e-mail domain (case-insensitive, like intel)."""
    v = str(value)
    if v.startswith("h:"):
        return v
    return "h:" + _mac(key, kind, v.strip().lower())


def hash_ip(ip: str, key: bytes) -> str:
    """``h:<subnet hash>:<IP hash>`` of a client IP."""
    if re.match(HASHED_IP, ip):
        return ip
    m = re.match(V4_PREFIX, ip)
    net = m.group(1) + ".0/24" if m else None
    if not m:
        m6 = re.match(V6_PREFIX, ip)
        net = m6.group(1).lower() + "::/48" if m6 else None
    return "h:" + (_mac(key, "subnet", net) if net else "") + ":" + _mac(key, "ip", ip)


def subnet_of(hashed_ip: str) -> str | None:
    """The subnet value of a hashed IP, as linkage compares it."""
    m = re.match(HASHED_IP, hashed_ip or "")
    return "h:" + m.group(1) + "/net" if m and m.group(1) else None


def _mac_sql(key: bytes, kind: str, text_sql: str) -> str:
    """HMAC-SHA256 in DuckDB: H((K^opad) || H((K^ipad) || m)), first 16 hex."""
    k = key if len(key) <= 64 else hashlib.sha256(key).digest()
    k = k.ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in k).hex()
    opad = bytes(b ^ 0x5C for b in k).hex()
    inner = f"unhex(sha256(unhex('{ipad}') || encode('{kind}|' || {text_sql})))"
    return f"left(sha256(unhex('{opad}') || {inner}), {_HEX})"


def value_sql(col: str, key: bytes, kind: str = "value") -> str:
    """SQL of :func:`hash_value`."""
    return (f"CASE WHEN {col} IS NULL OR starts_with({col}, 'h:') THEN {col} "
            f"ELSE 'h:' || {_mac_sql(key, kind, f'lower(trim({col}))')} END")


def ip_sql(col: str, key: bytes) -> str:
    """SQL of :func:`hash_ip`."""
    v4 = f"regexp_extract({col}, '{V4_PREFIX}', 1)"
    v6 = f"lower(regexp_extract({col}, '{V6_PREFIX}', 1))"
    net = f"CASE WHEN {v4} != '' THEN {v4} || '.0/24' WHEN {v6} != '' THEN {v6} || '::/48' END"
    return (f"CASE WHEN {col} IS NULL OR regexp_matches({col}, '{HASHED_IP}') THEN {col} "
            f"ELSE 'h:' || coalesce({_mac_sql(key, 'subnet', net)}, '') || ':' || {_mac_sql(key, 'ip', col)} END")
