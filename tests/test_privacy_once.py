"""Privacy applied once per path, and safely twice: a pseudonym is never pseudonymised again.

A keyed pseudonym is ``<TYPE:16 hex digits>``; about one in 18,000 has only decimal digits that pass
Luhn, and the card rule would then replace it again (a second, different pseudonym: the account splits
in two). The service journals rows as the store keeps them and the store takes them as they are.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools

import duckdb
import pytest

from distillguard.privacy.redact import pseudonym
from distillguard.privacy.settings import StorePrivacy
from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import T0

KEY = bytes(range(32))


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _email_with_a_card_shaped_pseudonym(key: bytes) -> str:
    """An e-mail address whose pseudonym's hex digits are a Luhn-valid 16-digit number."""
    for i in itertools.count():
        email = f"user{i}@example-mail.com"
        mac = hmac.new(key, email.encode(), hashlib.sha256).hexdigest()[:16]
        if mac.isdigit() and _luhn(mac):
            return email


@pytest.mark.parametrize("value", ["jane@example.com", "4539 5787 6362 1486", "+1 415 555 2671",
                                   "sk-proj-Q7xZ9vLk2mN4pR8sT1uW3yB5cD6eF0gH2jK4"])
def test_a_pseudonym_is_its_own_pseudonym(value):
    once = pseudonym(value, KEY)
    assert once != value and pseudonym(once, KEY) == once


def test_a_card_shaped_pseudonym_is_kept_by_python_and_by_the_store_sql():
    from distillguard.schema import EVENT_SCHEMA
    from distillguard.store import EventStore
    import pyarrow as pa

    email = _email_with_a_card_shaped_pseudonym(KEY)
    once = pseudonym(email, KEY)
    assert once.startswith("<EMAIL:") and once[7:-1].isdigit()
    assert pseudonym(once, KEY) == once
    row = {f.name: None for f in EVENT_SCHEMA} | {"event_id": "e1", "ts": T0, "account_id": once}
    with EventStore(":memory:", privacy=StorePrivacy(identifier_key=KEY)) as store:
        store.append_events([pa.Table.from_pylist([row], schema=EVENT_SCHEMA)])
        assert store.con.execute("SELECT account_id FROM events").fetchall() == [(once,)]


def test_the_service_stores_the_pseudonym_it_decided_on(tmp_path):
    """Journaled rows are already as the store keeps them: the account stays one account."""
    db = tmp_path / "dg.duckdb"
    email = _email_with_a_card_shaped_pseudonym(KEY)
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, flush_seconds=3600,
                                 privacy=StorePrivacy(identifier_key=KEY))).start(background=False)
    try:
        out = engine.ingest([{"account_id": email, "ts": "2026-03-02T10:00:00Z", "model": "orion-2",
                              "prompt": f"write to {email}"}])
        assert out["accepted"] == 1
        engine.journal.flush()
    finally:
        engine.stop()
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT account_id, prompt FROM events").fetchall()
    con.close()
    assert stored == [(pseudonym(email, KEY), "write to <EMAIL>")]


@pytest.mark.parametrize("prompts, kept", [("none", (0, 0)), ("sampled", (150, 250)), ("redacted", (2000, 2000))])
def test_the_service_keeps_what_each_prompt_mode_says(tmp_path, prompts, kept):
    """Rows the service journals are stored without a second redaction, and ``sampled`` still samples."""
    db = tmp_path / "dg.duckdb"
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, flush_seconds=3600,
                                 privacy=StorePrivacy(prompts=prompts, sample_rate=0.1))).start(background=False)
    try:
        engine.ingest([{"account_id": f"a{i % 7}", "ts": "2026-03-02T10:00:00Z", "request_id": f"r{i}",
                        "prompt": f"q{i} write to jane@example.com"} for i in range(2000)])
        engine.journal.flush()
    finally:
        engine.stop()
    con = duckdb.connect(str(db), read_only=True)
    n, leaked = con.execute("SELECT count(prompt), count(*) FILTER (WHERE contains(prompt, 'jane@')) FROM events"
                            ).fetchall()[0]
    con.close()
    assert kept[0] <= n <= kept[1] and leaked == 0


@pytest.mark.parametrize("settings", [StorePrivacy(), StorePrivacy(prompts="none"), StorePrivacy(prompts="full"),
                                      StorePrivacy(identifiers="hashed", identifier_key=KEY)])
def test_a_row_is_kept_as_each_field_would_be_alone(settings):
    """record() prefilters a row's texts and identifiers together: the same result as field by field."""
    import random

    from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA

    planted = ["jane@example.com", "4539 5787 6362 1486", "+1 415 555 2671", "198.51.100.7", "plain words", "",
               "sk-proj-Q7xZ9vLk2mN4pR8sT1uW3yB5cD6eF0gH2jK4", '{"trace_id":"0af7651916cd43dd8448eb211c80319c"}']
    rnd = random.Random(3)
    names = [*EVENT_SCHEMA.names, *ACCOUNT_SCHEMA.names, "note"]
    for _ in range(300):
        row = {f: rnd.choice([*planted, None, 7]) for f in rnd.sample(names, 8)}
        assert settings.record(dict(row)) == {f: settings._value(f, v) for f, v in row.items()}, row


def test_inert_values_are_set_aside_as_the_store_sql_does():
    """The prefilter's view of a text: each INERT value emptied, exactly as the SQL regexp_replace leaves it."""
    import random
    import re

    from distillguard.privacy.redact import INERT, _set_inert_aside

    rx = re.compile(INERT[0], re.ASCII)
    pieces = ['"trace_id":"', "6bdfff8ac9d285767d0ce52581d3d6cd", '"', "x", "ABC", "0" * 31, "0" * 33,
              '"trace_id":"6bdfff8ac9d285767d0ce52581d3d6cd"', '"trace_id":"trace_id":"']
    rnd = random.Random(1)
    for _ in range(5000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 8)))
        assert _set_inert_aside(text) == rx.sub('\\1"', text), text
