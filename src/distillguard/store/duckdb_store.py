"""DuckDB event store.

Tables use the canonical names of :mod:`distillguard.schema`. Appends are
idempotent by ``event_id``: rows are staged, then inserted with one anti-join,
so ingesting the same file twice adds nothing and the duplicate count is exact.

Every row reaches ``events`` through :meth:`EventStore.insert_new`, which
applies the store's :class:`~distillguard.privacy.StorePrivacy` (redaction of
prompts, keyed identifiers) in the same statement: no intake path can store
text the privacy settings would not keep (docs/privacy.md).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from distillguard.errors import UsageError
from distillguard.limits import DEFAULT_MEMORY_LIMIT
from distillguard.privacy.settings import StorePrivacy
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA

__all__ = ["DEFAULT_MEMORY_LIMIT", "EventStore", "SCRATCH_UNKEPT", "add_missing_columns", "ddl_for", "memory_errors_as_usage", "table_exists"]

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def table_exists(con, table: str) -> bool:
    """Whether a DuckDB connection's database has ``table`` (stores written by older versions lack some)."""
    q = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return con.execute(q, [table]).fetchall()[0][0] > 0


def ddl_for(name: str, schema: pa.Schema, key: str | None = None) -> str:
    """``CREATE TABLE IF NOT EXISTS`` text for an Arrow schema."""
    cols = ", ".join(f'"{f.name}" {_DUCK_TYPES[f.type]}' for f in schema)
    return f'CREATE TABLE IF NOT EXISTS "{name}" ({cols})'


def add_missing_columns(con, name: str, schema: pa.Schema) -> None:
    """Give a table that an older version created the columns the schema gained since (NULL in old rows),
    e.g. ``events.client_fingerprint``: inserts name their columns, so the order does not matter."""
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                      [name]).fetchall()}
    for f in schema:
        if f.name not in have:
            con.execute(f'ALTER TABLE "{name}" ADD COLUMN "{f.name}" {_DUCK_TYPES[f.type]}')


SCRATCH_UNKEPT = ("response",)
"""Event columns a scan's temporary store leaves NULL: no detection stage reads them (the
largest texts: leaving them out halves ingest at 1M events, docs/scoring.md)."""


@contextmanager
def memory_errors_as_usage(limit: str | None):
    """DuckDB running out of its memory limit becomes one readable line (exit 2), not a traceback."""
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise UsageError(f"DuckDB ran out of memory within --memory-limit {limit}: raise it (e.g. --memory-limit 8GB) "
                         f"or free memory ({str(exc).splitlines()[0]})") from exc


class EventStore:
    """A DuckDB file with ``events`` and ``accounts`` tables.

    Parameters
    ----------
    path
        The DuckDB file; created when missing. ``":memory:"`` for tests.
    read_only
        Open without write access (several readers may share a file).
    memory_limit
        DuckDB's memory for this connection (``"4GB"``, ``"500MB"``); beyond it
        DuckDB spills to disk. None: DuckDB's own default, 80% of RAM, which
        lets its cache of the store crowd out the scan's own work.
    privacy
        What is kept of each event. Checked against the settings the store
        recorded on its first write (a difference is a UsageError) or recorded
        now. None: the store's recorded settings, else the defaults (prompts
        redacted, identifiers clear), bound on the first write of events or
        accounts, so opening a store for other tables settles nothing.
    db_key_file
        Encrypt the store at rest with the key in this file (DuckDB's AES-GCM;
        see :func:`distillguard.privacy.encryption.connect`).
    scratch
        A temporary store that only the scan writing it reads (``scan`` without
        ``--db``): the columns of :data:`SCRATCH_UNKEPT`, which no detection
        stage reads, stay NULL, so they are neither redacted nor written
        (validation still reads them).
    """

    def __init__(self, path: str | Path = "distillguard.duckdb", read_only: bool = False,
                 memory_limit: str | None = DEFAULT_MEMORY_LIMIT, privacy: StorePrivacy | None = None,
                 db_key_file: str | Path | None = None, scratch: bool = False):
        from distillguard.privacy.encryption import connect

        self.path = str(path)
        self.read_only = read_only
        self.privacy = privacy or StorePrivacy()
        self._bound, self._given = False, privacy is not None
        self.kept_columns = [n for n in EVENT_SCHEMA.names if not (scratch and n in SCRATCH_UNKEPT)]
        self.con = connect(self.path, read_only=read_only, key_file=db_key_file)
        self.con.execute("SET TimeZone = 'UTC'")
        if memory_limit is not None:
            try:
                self.con.execute(f"SET memory_limit = '{str(memory_limit).replace(chr(39), '')}'")
            except duckdb.Error as exc:
                self.con.close()
                raise UsageError(f"bad memory limit {memory_limit!r} (e.g. 4GB or 500MB)") from exc
        if not read_only:
            self.con.execute(ddl_for("events", EVENT_SCHEMA))
            self.con.execute(ddl_for("accounts", ACCOUNT_SCHEMA))
            add_missing_columns(self.con, "events", EVENT_SCHEMA)
            if privacy is not None:
                self.writing()

    def writing(self) -> StorePrivacy:
        """The privacy settings, bound to the store's recorded ones (and its salt) before the first write.

        Binding records the settings and registers the redaction functions, which a rolled-back
        transaction would undo: a caller that opens its own transaction calls this first.
        """
        if not self._bound:
            try:
                if not self._given:  # the store's recorded settings (the defaults on a new store)
                    self.privacy = StorePrivacy.of_store(self.con)
                self.privacy = self.privacy.bind(self.con)
            except UsageError as exc:
                self.con.close()
                raise UsageError(f"{self.path}: {exc}") from None
            self.privacy.install(self.con)
            self._bound = True
        return self.privacy

    # -- writing -----------------------------------------------------------
    def append_events(self, batches, group_rows: int = 262_144, kept: bool = False) -> tuple[int, int]:
        """Insert Arrow batches/tables of canonical events whose ``event_id`` is new.

        Batches are grouped up to ``group_rows`` rows and inserted with one
        anti-join each, streaming, so memory stays bounded. Returns
        ``(inserted, duplicates)``; duplicates are rows whose ``event_id`` is
        already stored or repeats within the input. ``kept``: see :meth:`insert_new`.
        """
        import pyarrow.compute as pc

        inserted = total = 0
        group: list[pa.RecordBatch] = []
        rows = 0

        def flush() -> int:
            tbl = pa.Table.from_batches(group, schema=EVENT_SCHEMA) if group else None
            group.clear()
            if tbl is None or tbl.num_rows == 0:
                return 0
            unique = pc.count_distinct(tbl.column("event_id")).as_py() == tbl.num_rows
            src = "_batch" if unique else (
                "(SELECT * FROM _batch QUALIFY row_number() OVER (PARTITION BY event_id) = 1)")
            self.con.register("_batch", tbl)
            try:
                return self.insert_new(src, kept)
            finally:
                self.con.unregister("_batch")

        for batch in batches:
            if batch.num_rows == 0:
                continue
            parts = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
            for part in parts:
                if part.schema != EVENT_SCHEMA:
                    part = pa.Table.from_batches([part]).select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA).to_batches()[0]
                group.append(part)
                rows += part.num_rows
                total += part.num_rows
            if rows >= group_rows:
                inserted += flush()
                rows = 0
        inserted += flush()
        return inserted, total - inserted

    def insert_new(self, source: str, kept: bool = False) -> int:
        """Insert the canonical rows of ``source`` (a table name or parenthesised query) whose
        ``event_id`` is not stored yet, as the privacy settings keep them; the count inserted.
        ``kept``: the rows are as :meth:`StorePrivacy.record` keeps them already (the service's
        journal, written by this process): not redacted a second time."""
        names = self.kept_columns
        return self.con.execute(
            f"INSERT INTO events ({', '.join(chr(34) + n + chr(34) for n in names)}) "
            f"SELECT * FROM ({self.writing().select(names, source, kept)}) p "
            "ANTI JOIN events e ON p.event_id = e.event_id").fetchone()[0]

    def append_accounts(self, table: pa.Table, kept: bool = False) -> int:
        """Upsert account metadata (the newest row for an ``account_id`` wins); ``kept`` as for :meth:`insert_new`."""
        if table.num_rows == 0:
            return 0
        self.con.register("_acc", table.select(ACCOUNT_SCHEMA.names))
        stored = self.writing().select(ACCOUNT_SCHEMA.names, "_acc", kept)  # ids as stored (pseudonyms) for the upsert
        try:  # redacted once, then used twice
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE _acc_kept AS {stored}")
            self.con.execute("DELETE FROM accounts WHERE account_id IN (SELECT account_id FROM _acc_kept)")
            self.con.execute("INSERT INTO accounts SELECT * FROM _acc_kept "
                             "QUALIFY row_number() OVER (PARTITION BY account_id) = 1")
        finally:
            self.con.execute("DROP TABLE IF EXISTS _acc_kept")
            self.con.unregister("_acc")
        return table.num_rows

    # -- reading -----------------------------------------------------------
    def count(self, table: str) -> int:
        return self.con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]

    def has_table(self, table: str) -> bool:
        q = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
        return self.con.execute(q, [table]).fetchall()[0][0] > 0

    def ibis(self):
        """An Ibis DuckDB backend over this connection (for feature expressions)."""
        import ibis

        return ibis.duckdb.from_connection(self.con)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
