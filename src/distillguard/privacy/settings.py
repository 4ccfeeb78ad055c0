"""What the store keeps of each event: the ``store:`` section of the policy YAML.

:class:`StorePrivacy` is applied at the store boundary: every insert into
``events`` goes through :meth:`StorePrivacy.event_columns` (SQL), and the
service, which journals events before they reach the store, through
:meth:`StorePrivacy.record` (the same rules in Python). See docs/privacy.md.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.privacy import keyed
from distillguard.privacy.redact import PREFILTER, redact
from distillguard.schema import EVENT_SCHEMA

__all__ = ["PROMPT_MODES", "TEXT_FIELDS", "StorePrivacy", "store_privacy"]

PROMPT_MODES = ("redacted", "full", "sampled", "none")
TEXT_FIELDS = ("prompt", "system_prompt", "response")
_SETTINGS = {"prompts", "sample_rate", "identifiers", "identifier_key_file", "retention_days"}


def _redact_arrow(values: pa.Array) -> pa.Array:
    return pa.array([redact(v) for v in values.to_pylist()], pa.string())


@dataclass(frozen=True)
class StorePrivacy:
    """How prompts and identifiers are stored, and for how long.

    Parameters
    ----------
    prompts
        ``redacted`` (default): typed placeholders replace personal and secret
        data; ``full``: as received; ``sampled``: redacted text for a
        ``sample_rate`` share of events (chosen by event id), none for the rest;
        ``none``: no prompt, system prompt or response text at all.
    identifiers
        ``clear`` (default) or ``hashed``: client IPs, payment fingerprints and
        e-mail domains stored as keyed hashes (HMAC-SHA256, ``identifier_key``).
    retention_days
        Raw events older than this are deleted after each ``scan --db`` and by
        the service (None: kept).
    """

    prompts: str = "redacted"
    sample_rate: float = 0.1
    identifiers: str = "clear"
    identifier_key: bytes | None = None
    retention_days: int | None = None

    def __post_init__(self):
        if self.prompts not in PROMPT_MODES:
            raise UsageError(f"store.prompts must be one of {', '.join(PROMPT_MODES)} (got {self.prompts!r})")
        if not 0.0 <= float(self.sample_rate) <= 1.0:
            raise UsageError(f"store.sample_rate must be between 0 and 1 (got {self.sample_rate!r})")
        if self.identifiers not in ("clear", "hashed"):
            raise UsageError(f"store.identifiers must be clear or hashed (got {self.identifiers!r})")
        if self.identifiers == "hashed" and not self.identifier_key:
            raise UsageError("store.identifiers: hashed needs a key file (--identifier-key or store.identifier_key_file)")
        if self.retention_days is not None and int(self.retention_days) < 1:
            raise UsageError(f"store.retention_days must be at least 1 (got {self.retention_days!r})")

    @classmethod
    def from_policy(cls, section: dict | None, prompts: str | None = None,
                    identifier_key: Path | None = None) -> "StorePrivacy":
        """Settings from a policy's ``store:`` section; command-line flags win."""
        section = dict(section or {})
        unknown = set(section) - _SETTINGS
        if unknown:
            raise UsageError(f"policy store: unknown setting {sorted(unknown)[0]!r}")
        key_file = identifier_key or section.get("identifier_key_file")
        days = section.get("retention_days")
        return cls(prompts=prompts or section.get("prompts", "redacted"),
                   sample_rate=float(section.get("sample_rate", 0.1)),
                   identifiers=section.get("identifiers", "clear"),
                   identifier_key=keyed.read_key(key_file) if key_file else None,
                   retention_days=int(days) if days is not None else None)

    def with_prompts(self, prompts: str | None) -> "StorePrivacy":
        return replace(self, prompts=prompts) if prompts else self

    # -- the store's SQL ---------------------------------------------------------------
    def install(self, con) -> None:
        """Register the redaction function on a DuckDB connection (once per connection)."""
        import duckdb

        try:
            con.create_function("dg_redact", _redact_arrow, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                                type="arrow", null_handling="special", side_effects=False)
        except duckdb.CatalogException:  # already there
            pass

    def _text(self, col: str, alias: str) -> str:
        if self.prompts == "full":
            return col
        if self.prompts == "none":
            return "NULL"
        quoted = "'" + PREFILTER.replace("'", "''") + "'"
        red = f"CASE WHEN regexp_matches({col}, {quoted}) THEN dg_redact({col}) ELSE {col} END"
        if self.prompts == "sampled":
            return f"CASE WHEN hash({alias}.\"event_id\") % 10000 < {int(self.sample_rate * 10000)} THEN {red} END"
        return red

    def event_columns(self, alias: str = "s") -> str:
        """The SELECT list that turns canonical rows of ``alias`` into what the store keeps."""
        out = []
        for f in EVENT_SCHEMA.names:
            col = f'{alias}."{f}"'
            if f in TEXT_FIELDS:
                col = self._text(col, alias)
            elif f == "client_ip" and self.identifiers == "hashed":
                col = keyed.ip_sql(col, self.identifier_key)
            out.append(f'{col} AS "{f}"')
        return ", ".join(out)

    def account_columns(self, names, alias: str = "s") -> str:
        """The SELECT list for account metadata (payment fingerprints and e-mail domains hashed when asked)."""
        out = []
        for f in names:
            col = f'{alias}."{f}"'
            if f in keyed.ACCOUNT_FIELDS and self.identifiers == "hashed":
                col = keyed.value_sql(col, self.identifier_key)
            out.append(f'{col} AS "{f}"')
        return ", ".join(out)

    # -- the same in Python (the service's journal) -------------------------------------
    def record(self, row: dict) -> dict:
        """A canonical event as the store would keep it (text redacted or dropped, identifiers hashed)."""
        if self.prompts != "full":
            for f in TEXT_FIELDS:
                if row.get(f) is not None:
                    row[f] = None if self.prompts == "none" else redact(row[f])
        if self.identifiers == "hashed" and row.get("client_ip"):
            row["client_ip"] = keyed.hash_ip(row["client_ip"], self.identifier_key)
        return row

    def account(self, row: dict) -> dict:
        """Account metadata as the store would keep it."""
        if self.identifiers == "hashed":
            for f in keyed.ACCOUNT_FIELDS:
                if row.get(f):
                    row[f] = keyed.hash_value(row[f], self.identifier_key)
        return row


def store_privacy(policy=None, prompts: str | None = None, identifier_key: Path | None = None) -> StorePrivacy:
    """The settings a command runs with: the policy file's ``store:`` section under its flags."""
    from distillguard.score.policy import Policy

    return StorePrivacy.from_policy(Policy.load(policy).store, prompts=prompts, identifier_key=identifier_key)
