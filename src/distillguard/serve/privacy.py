"""What a view shows to whom: the ``reader`` role gets no prompt text and no raw IPs, subnets, payment
fingerprints or e-mail domains, only keyed hashes of them (stable, so a reader can still see that two
accounts share a card without learning the card).

The key is random per store (``service_keys`` table), so the hashes cannot be reversed by guessing
values without it and do not match another store's.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["SENSITIVE_KINDS", "redact", "store_key"]

SENSITIVE_KINDS = frozenset({"client_ip", "ip", "subnet", "payment_fingerprint", "email_domain", "email"})
_TEXT_WORDS = ("prompt", "example", "sample", "text")


def store_key(con) -> bytes:
    """The store's view-hash key (made on first use)."""
    con.execute("CREATE TABLE IF NOT EXISTS service_keys (name VARCHAR PRIMARY KEY, key_hex VARCHAR)")
    r = con.execute("SELECT key_hex FROM service_keys WHERE name = 'view_hash'").fetchall()
    if r:
        return bytes.fromhex(r[0][0])
    key = secrets.token_bytes(32)
    con.execute("INSERT INTO service_keys VALUES ('view_hash', ?)", [key.hex()])
    return key


def _h(key: bytes, kind: str, value) -> str:
    return "h:" + hmac.new(key, f"{kind}\x00{value}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:24]


def redact(obj, key: bytes):
    """A copy of a view with prompt text dropped and sensitive identifiers replaced by keyed hashes."""
    if isinstance(obj, dict):
        kind = obj.get("kind")
        out = {}
        for k, v in obj.items():
            if any(w in k.lower() for w in _TEXT_WORDS) and not isinstance(v, (int, float, type(None))):
                continue  # text (and what holds text); counts and shares about prompts stay
            if k == "value" and kind in SENSITIVE_KINDS and v is not None:
                out[k] = _h(key, kind, v)
            elif k in SENSITIVE_KINDS and isinstance(v, (str, int)):
                out[k] = _h(key, k, v)
            else:
                out[k] = redact(v, key)
        return out
    if isinstance(obj, (list, tuple)):
        # link hits travel as [kind, value] pairs
        if len(obj) == 2 and isinstance(obj[0], str) and obj[0] in SENSITIVE_KINDS and isinstance(obj[1], (str, int)):
            return [obj[0], _h(key, obj[0], obj[1])]
        return [redact(v, key) for v in obj]
    return obj
