"""Resource defaults shared by the store and the command line (no heavy imports, so ``--help`` stays fast)."""

DEFAULT_MEMORY_LIMIT = "4GB"
"""DuckDB's memory for a store by default: at 10M events a scan then peaks
under 8 GB in all (docs/spark.md); raise it for stores far larger."""
