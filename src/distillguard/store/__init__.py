"""The event store: one DuckDB file holding canonical events, accounts and results."""
from distillguard.store.duckdb_store import EventStore

__all__ = ["EventStore"]
