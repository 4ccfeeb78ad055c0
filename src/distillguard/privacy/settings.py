"""What the store keeps of each event: the ``store:`` section of the policy YAML.

:class:`StorePrivacy` is applied at the store boundary: every insert into
``events`` goes through :meth:`StorePrivacy.event_columns` (SQL), every
account row through :meth:`StorePrivacy.account_columns`, and the service,
which journals events before they reach the store, through
:meth:`StorePrivacy.record` and :meth:`StorePrivacy.account` (the same rules
in Python). Fields come in three kinds:

* prompt texts (prompt, system prompt, response): ``store.prompts`` decides;
* other free text (``extra``, a signup path): redacted unless ``prompts: full``;
* identifiers and linkage values (event, account, key, org, conversation
  ids, model, user agent, client fingerprint, payment fingerprint): kept, except a value holding
  personal or secret data (an account id that is an e-mail address, a user
  agent with a contact address), which becomes a keyed pseudonym: equal
  values stay equal, so linkage and joins work as before;
  with ``identifiers: hashed`` client IPs, payment fingerprints and e-mail
  domains are keyed hashes (:mod:`distillguard.privacy.keyed`).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.privacy import keyed
from distillguard.privacy.redact import (ID_PREFILTER, PREFILTER, RULES, inert_sql, needs_pseudonym, needs_redaction,
                                        pseudonym, redact)
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA

__all__ = ["PROMPT_MODES", "TEXT_FIELDS", "StorePrivacy", "key_fingerprint"]

PROMPT_MODES = ("redacted", "full", "sampled", "none")
TEXT_FIELDS = ("prompt", "system_prompt", "response")
FREE_TEXT = ("extra", "signup_path")
ID_FIELDS = ("event_id", "account_id", "api_key_id", "org_id", "conversation_id", "model", "user_agent",
             "client_fingerprint", "payment_fingerprint", "email_domain")
_SETTINGS = {"prompts", "sample_rate", "identifiers", "identifier_key_file", "retention_days"}


SETTINGS_TABLE = "privacy_settings"
"""One row: what the store was first written with (prompt mode, identifiers, key fingerprint, salt)."""
_SAMPLE_BUCKETS = 10_000


def key_fingerprint(key: bytes | None) -> str | None:
    """What the store records of an identifier key: enough to tell two keys apart, nothing to recover it."""
    return hashlib.sha256(b"distillguard-identifier-key/1\n" + key).hexdigest()[:16] if key else None


def sampled_in(event_id, rate: float) -> bool:
    """Whether ``sampled`` mode keeps this event's text (the same choice as the store's SQL)."""
    if event_id is None:
        return False
    return int(hashlib.md5(str(event_id).encode()).hexdigest()[:8], 16) % _SAMPLE_BUCKETS < int(rate * _SAMPLE_BUCKETS)


def _sampled_sql(col: str, rate: float) -> str:
    return f"CAST(('0x' || left(md5({col}), 8)) AS BIGINT) % {_SAMPLE_BUCKETS} < {int(rate * _SAMPLE_BUCKETS)}"


def _first_row(con, table: str, columns: str) -> tuple | None:
    """The first row of a table of the store, None when the table is missing or empty."""
    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = "
                      "current_schema() AND table_catalog = current_database()", [table]).fetchall()[0][0]
    rows = con.execute(f"SELECT {columns} FROM {table} LIMIT 1").fetchall() if has else []
    return rows[0] if rows else None


def _recorded(con) -> dict | None:
    """The settings the store recorded on its first write (None: never written)."""
    row = _first_row(con, SETTINGS_TABLE, "prompts, identifiers, key_fingerprint, salt")
    return dict(zip(("prompts", "identifiers", "key_fingerprint", "salt"), row)) if row else None


def _legacy_salt(con) -> bytes | None:
    """The salt of a store written before settings were recorded (table ``privacy_salt``)."""
    row = _first_row(con, "privacy_salt", "salt")
    return bytes.fromhex(row[0]) if row else None


def _sql_text(pattern: str) -> str:
    return "'" + pattern.replace("'", "''") + "'"


def _q(name: str) -> str:
    return '"' + name + '"'


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
    salt
        Key of the pseudonyms of identifiers: the identifier key when given,
        else a random value the store keeps (:meth:`bind`).
    prompts_chosen
        False when ``prompts`` is only the default (no flag, no policy setting):
        a store that recorded another mode is then written in its own mode.
    """

    prompts: str = "redacted"
    sample_rate: float = 0.1
    identifiers: str = "clear"
    identifier_key: bytes | None = None
    retention_days: int | None = None
    salt: bytes | None = None
    prompts_chosen: bool = True

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
        if self.salt is None:
            object.__setattr__(self, "salt", self.identifier_key or secrets.token_bytes(32))

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
        chosen = prompts or section.get("prompts")
        return cls(prompts=chosen or "redacted", prompts_chosen=chosen is not None,
                   sample_rate=float(section.get("sample_rate", 0.1)),
                   identifiers=section.get("identifiers", "clear"),
                   identifier_key=keyed.load_key(key_file) if key_file else None,
                   retention_days=int(days) if days is not None else None)

    @property
    def redacting(self) -> bool:
        return self.prompts != "full"

    # -- the store's SQL ---------------------------------------------------------------
    def mismatch(self, recorded: dict) -> str | None:
        """Why these settings may not write a store that recorded ``recorded`` (None: they may)."""
        fp, given = recorded["key_fingerprint"], key_fingerprint(self.identifier_key)
        if fp != given:
            if fp is None:
                return "the store was written without an identifier key; drop --identifier-key (or use a new store)"
            if given is None:
                return f"the store was written with an identifier key (fingerprint {fp}): give the same --identifier-key"
            return f"--identifier-key (fingerprint {given}) is not the key the store was written with (fingerprint {fp})"
        if recorded["prompts"] != self.prompts:
            return (f"the store keeps prompts {recorded['prompts']}, this run asks for {self.prompts}: "
                    f"run with --prompts {recorded['prompts']} (or store.prompts in the policy), or use a new store")
        if recorded["identifiers"] != self.identifiers:
            return (f"the store keeps identifiers {recorded['identifiers']}, this run asks for {self.identifiers}: "
                    f"set store.identifiers: {recorded['identifiers']} in the policy, or use a new store")
        return None

    def bind(self, con) -> "StorePrivacy":
        """These settings with the store's pseudonym salt, recorded on the store's first write.

        A store written under other settings refuses (UsageError naming the
        difference): mixing modes would store one account under two ids, and
        ``forget`` would look for the wrong one.
        """
        rec = _recorded(con)
        if rec is None:
            legacy = self.identifier_key is None and _legacy_salt(con)
            bound = replace(self, salt=self.identifier_key or legacy or self.salt)
            con.execute(f"CREATE TABLE IF NOT EXISTS {SETTINGS_TABLE} (prompts VARCHAR, identifiers VARCHAR, "
                        "key_fingerprint VARCHAR, salt VARCHAR)")  # the salt only when no key: never the key
            con.execute(f"INSERT INTO {SETTINGS_TABLE} VALUES (?, ?, ?, ?)",
                        [self.prompts, self.identifiers, key_fingerprint(self.identifier_key),
                         None if self.identifier_key else bound.salt.hex()])
            return bound
        mine = self if self.prompts_chosen else replace(self, prompts=rec["prompts"])  # none asked: the store's
        why = mine.mismatch(rec)
        if why:
            raise UsageError(f"store privacy settings differ: {why}")
        return replace(mine, salt=self.identifier_key or bytes.fromhex(rec["salt"]))

    @classmethod
    def of_store(cls, con, identifier_key: bytes | None = None) -> "StorePrivacy":
        """The settings a store recorded, under the identifier key they name (``forget`` looks accounts up with them)."""
        rec = _recorded(con)
        if rec is None:  # never written through insert_new (or written before settings were recorded)
            return cls(identifier_key=identifier_key, salt=identifier_key or _legacy_salt(con))
        if key_fingerprint(identifier_key) != rec["key_fingerprint"]:
            raise UsageError(f"store privacy settings differ: {cls(identifier_key=identifier_key).mismatch(rec)}")
        return cls(prompts=rec["prompts"], identifiers=rec["identifiers"], identifier_key=identifier_key,
                   salt=identifier_key or bytes.fromhex(rec["salt"]))

    def install(self, con) -> None:
        """Register the validators' and the pseudonym functions on a DuckDB connection."""
        import duckdb

        text = duckdb.sqltype("VARCHAR")
        salt = self.salt

        def pseudonym_arrow(values: pa.Array) -> pa.Array:
            # once per distinct value: the rows the prefilter passes repeat a few user agents, models, orgs
            enc = (values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values).dictionary_encode()
            return pa.array([pseudonym(v, salt) for v in enc.dictionary.to_pylist()], pa.string()).take(enc.indices)

        def validating(rule):
            def fn(texts: pa.Array, candidates: pa.Array) -> pa.Array:
                return pa.array([rule.replace_valid(t, c) if c else t
                                 for t, c in zip(texts.to_pylist(), candidates.to_pylist())], pa.string())
            return fn

        functions = [("dg_pseudonym", pseudonym_arrow, [text])]
        functions += [(r.sql_function, validating(r), [text, duckdb.list_type(text)]) for r in RULES if r.sql_function]
        for name, fn, args in functions:
            try:
                con.remove_function(name)
            except duckdb.InvalidInputException:  # not registered yet
                pass
            con.create_function(name, fn, args, text, type="arrow", null_handling="special", side_effects=False)

    def _redacts(self, field: str) -> bool:
        return (field in FREE_TEXT and self.redacting) or (field in TEXT_FIELDS and self.prompts in ("redacted", "sampled"))

    def _pseudonymises(self, field: str) -> bool:
        hashed = self.identifiers == "hashed" and field in keyed.ACCOUNT_FIELDS
        return field in ID_FIELDS and self.redacting and not hashed

    def _column(self, field: str, col: str) -> str:
        """A stored column from a canonical one whose free text is already redacted."""
        if field in TEXT_FIELDS and self.prompts == "none":
            return "NULL"
        if self.identifiers == "hashed" and field == "client_ip":
            return keyed.ip_sql(col, self.identifier_key)
        if self.identifiers == "hashed" and field in keyed.ACCOUNT_FIELDS:
            return keyed.value_sql(col, self.identifier_key)
        if self._pseudonymises(field):
            # the value's own prefilter (as pseudonym() has it) spares the call on the row's other identifiers
            return f"CASE WHEN s._dg_ids AND regexp_matches({col}, {_sql_text(ID_PREFILTER)}) THEN dg_pseudonym({col}) ELSE {col} END"
        return col

    def select(self, names, source: str, kept: bool = False) -> str:
        """The SELECT of what the store keeps of the canonical rows (columns ``names``) of ``source``.

        One prefilter per row over its free texts (and one over its
        identifiers) picks the rows that need work; free text is then redacted
        one rule per projection, each rule reading the text the rules before it
        left, exactly as :func:`~distillguard.privacy.redact.redact` does.
        ``kept``: the rows went through :meth:`record` already (the service's journal, sampling
        included): they are stored as they are.
        """
        if kept:
            return f"SELECT {', '.join(_q(f) for f in names)} FROM {source}"
        def any_match(fields, pattern, inert=False):
            text = "concat_ws(chr(31), " + ", ".join(_q(f) for f in fields) + ")" if fields else "NULL"
            if inert:  # as redact() sees it
                text = inert_sql(text)
            return f"coalesce(regexp_matches({text}, {_sql_text(pattern)}), FALSE)"

        sampled = [f for f in names if f in TEXT_FIELDS] if self.prompts == "sampled" else []
        if sampled:  # drop the texts sampling leaves out before redaction runs on them
            keep = _sampled_sql('"event_id"', self.sample_rate)
            source = "(SELECT * REPLACE (" + ", ".join(f"CASE WHEN {keep} THEN {_q(f)} END AS {_q(f)}" for f in sampled) \
                + f") FROM {source})"
        texts = [f for f in names if self._redacts(f)]
        ids = [f for f in names if self._pseudonymises(f)]
        sql = f"SELECT *, {any_match(texts, PREFILTER, inert=True)} AS _dg_hit, {any_match(ids, ID_PREFILTER)} AS _dg_ids FROM {source}"
        for rule in RULES if texts else ():
            steps = ", ".join(f"CASE WHEN _dg_hit THEN {rule.sql(_q(f))} ELSE {_q(f)} END AS {_q(f)}" for f in texts)
            sql = f"SELECT * REPLACE ({steps}) FROM ({sql})"
        cols = ", ".join(f"{self._column(f, 's.' + _q(f))} AS {_q(f)}" for f in names)
        return f"SELECT {cols} FROM ({sql}) s"

    # -- the same in Python (the service's journal) -------------------------------------
    def _value(self, field: str, v):
        if v is None or not isinstance(v, str):
            return v
        if field in TEXT_FIELDS and self.prompts == "none":
            return None
        if self._redacts(field):
            return redact(v)
        if self.identifiers == "hashed" and field == "client_ip":
            return keyed.hash_ip(v, self.identifier_key)
        if self.identifiers == "hashed" and field in keyed.ACCOUNT_FIELDS:
            return keyed.hash_value(v, self.identifier_key)
        if self._pseudonymises(field):
            return pseudonym(v, self.salt)
        return v

    @cached_property
    def _record_plan(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """The canonical fields :meth:`_value` redacts, pseudonymises, or changes otherwise (dropped, keyed hash)."""
        names = dict.fromkeys([*EVENT_SCHEMA.names, *ACCOUNT_SCHEMA.names])
        dropped = TEXT_FIELDS if self.prompts == "none" else ()
        hashed = ("client_ip", *keyed.ACCOUNT_FIELDS) if self.identifiers == "hashed" else ()
        texts = tuple(f for f in names if self._redacts(f) and f not in dropped)
        ids = tuple(f for f in names if self._pseudonymises(f))
        return texts, ids, tuple(f for f in names if f in dropped or f in hashed)

    def record(self, row: dict) -> dict:
        """A canonical event or account row as the store would keep it (in place; returned)."""
        return self.records([row])[0]

    def records(self, rows: list[dict]) -> list[dict]:
        """:meth:`record` for each row of a batch (in place; returned), the settings read once a batch.

        A sampled-out event's texts are dropped first (nothing to redact); then :meth:`_value` per
        field, behind one prefilter over the row's free texts and one over its identifiers (as
        :meth:`select` has them): most rows need no rule at all.
        """
        sampled, rate = self.prompts == "sampled", self.sample_rate
        texts, ids, always = self._record_plan
        value = self._value
        for row in rows:
            if sampled and "event_id" in row and not sampled_in(row["event_id"], rate):
                row.update((f, None) for f in TEXT_FIELDS if f in row)
            get = row.get
            other = always
            vals = [v for v in map(get, texts) if isinstance(v, str)]
            if vals and needs_redaction("\x1f".join(vals)):
                other = (*texts, *other)
            vals = [v for v in map(get, ids) if isinstance(v, str)]
            if vals and needs_pseudonym("\x1f".join(vals)):
                other = (*ids, *other)
            for f in other:
                if f in row:
                    row[f] = value(f, row[f])
        return rows

    def identifier(self, value: str) -> str:
        """An account id as the store keeps it (what ``store forget`` looks for)."""
        return self._value("account_id", value)
