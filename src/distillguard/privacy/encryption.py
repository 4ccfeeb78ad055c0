"""Opening the store, encrypted at rest when given a key file (DuckDB's AES-GCM encryption).

DuckDB writes encrypted files securely only with OpenSSL, which its ``httpfs``
extension brings; without it DuckDB refuses to write (its built-in fallback
is not secure). So does distillguard: ``--db-key-file`` without ``httpfs``
installed is an error, never a silently weaker store. See docs/privacy.md.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from distillguard.errors import UsageError

__all__ = ["connect", "read_db_key"]


def read_db_key(key_file) -> str:
    """The key in a key file (its first line; at least 16 characters)."""
    try:
        key = Path(key_file).read_text(encoding="utf-8").strip().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read key file {key_file}: {exc.strerror or exc}") from exc
    if not key or len(key[0].strip()) < 16:
        raise UsageError(f"{key_file}: a store key is one line of at least 16 characters "
                         "(e.g. `distillguard intel keygen > store.key`)")
    return key[0].strip()


def connect(path: str, read_only: bool = False, key_file=None) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the store at ``path`` (attached encrypted with a key file)."""
    if key_file is None:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            if "encrypted" in str(exc) and "without a key" in str(exc):
                raise UsageError(f"store {path} is encrypted: give its key with --db-key-file") from None
            raise UsageError(f"cannot open store {path}: {str(exc).splitlines()[0]}") from exc
    key = read_db_key(key_file)
    con = duckdb.connect(":memory:")
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error as exc:
        if not read_only:  # decrypting is safe with DuckDB's own fallback; writing is not
            con.close()
            raise UsageError("--db-key-file needs DuckDB's httpfs extension (OpenSSL) to encrypt securely, and it is "
                             f"not installed here ({str(exc).splitlines()[0]})") from exc
    opts = "ENCRYPTION_KEY '" + key.replace("'", "''") + "'" + (", READ_ONLY" if read_only else "")
    try:
        con.execute(f"ATTACH '{path.replace(chr(39), chr(39) * 2)}' AS store ({opts})")
        con.execute("USE store")
    except duckdb.Error as exc:
        con.close()
        raise UsageError(f"cannot open store {path} with the key in {key_file}: {str(exc).splitlines()[0]}") from exc
    return con
