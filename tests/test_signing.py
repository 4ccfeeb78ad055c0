"""The audit log signs every append with a key read once per process (docs/security.md, "Signing keys")."""
from __future__ import annotations

import duckdb
import pytest

from distillguard import signing
from distillguard.audit import log_event, trusted_public_key, verify_audit_signature


@pytest.fixture
def keys(tmp_path, monkeypatch):
    folder = tmp_path / "keys"
    monkeypatch.setenv(signing.KEYS_ENV, str(folder))
    return folder


def _append(con, n: int = 1) -> None:
    for i in range(n):
        log_event(con, analyst="alice", action="view", target_kind="account", target_id=f"a{i}")


def test_the_key_is_read_once_per_process_not_per_append(keys, tmp_path):
    priv, pub = signing.init_keys()
    con = duckdb.connect(str(tmp_path / "dg.duckdb"))
    _append(con)
    priv.write_text("not a key any more")  # reading it again would fail: the appends below must not
    _append(con, 3)
    assert con.execute("SELECT seq FROM audit_signature").fetchall() == [(4,)]
    assert verify_audit_signature(con, signing.load_public(pub)) is None


def test_a_new_key_pair_made_in_the_process_signs_from_then_on(keys, tmp_path):
    signing.init_keys()
    con = duckdb.connect(str(tmp_path / "dg.duckdb"))
    _append(con)
    old = trusted_public_key()
    signing.init_keys(force=True)
    _append(con)
    assert verify_audit_signature(con, trusted_public_key()) is None
    assert "not the trusted key" in verify_audit_signature(con, old)


def test_a_key_made_after_the_first_append_is_found(keys, tmp_path):
    con = duckdb.connect(str(tmp_path / "dg.duckdb"))
    _append(con)  # no key yet: the log is chained, not signed
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_signature'"
                       ).fetchall() == [(0,)]
    signing.init_keys()
    _append(con)
    assert verify_audit_signature(con, trusted_public_key()) is None
