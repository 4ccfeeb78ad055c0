"""Privacy of the event store: redaction before storage, keyed identifiers (erasure and retention: :mod:`distillguard.erasure`).

See docs/privacy.md.
"""
from distillguard.privacy.redact import redact
from distillguard.privacy.settings import PROMPT_MODES, StorePrivacy

__all__ = ["PROMPT_MODES", "StorePrivacy", "redact"]
