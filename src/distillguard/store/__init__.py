"""The event store: one DuckDB file holding canonical events, accounts and results."""
from distillguard.store.duckdb_store import DEFAULT_MEMORY_LIMIT, EventStore, memory_errors_as_usage, table_exists

__all__ = ["DEFAULT_MEMORY_LIMIT", "EventStore", "memory_errors_as_usage", "table_exists"]
