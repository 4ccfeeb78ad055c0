"""The one subject rule, and the LiteLLM records it is applied to (spend logs, the logger's records)."""
from __future__ import annotations

import json

import pytest

from distillguard.ingest import ingest_files
from distillguard.ingest.normalize import normalize
from distillguard.serve.gateways.litellm import DistillguardLogger, event_from_litellm
from distillguard.store import EventStore
from distillguard.subject import DEFAULT_RULE, choose, parse_rule, set_rule

IDS = {"end_user": "eu-1", "key_user": "ku-1", "key": "hash-1"}


@pytest.fixture(autouse=True)
def default_rule(monkeypatch):
    monkeypatch.delenv("DISTILLGUARD_SUBJECT", raising=False)
    set_rule(None)
    yield
    set_rule(None)


@pytest.fixture()
def store(tmp_path):
    s = EventStore(tmp_path / "t.duckdb")
    yield s
    s.close()


@pytest.mark.parametrize("rule, want", [(None, "ku-1"), ("end_user,key_user,key", "eu-1"), ("key", "hash-1")])
def test_the_rule_takes_the_first_identity_present(rule, want):
    if rule:
        set_rule(rule)
    ev = normalize({"ts": 1772582400, "identity": IDS})
    assert ev["account_id"] == want and ev["api_key_id"] == "hash-1"
    assert choose({"key": "hash-1"}) == "hash-1"
    assert choose({"end_user": "eu-1"}, DEFAULT_RULE) == "eu-1"  # no key at all (an app's own spans): the end user


def test_an_explicit_account_id_is_the_producers_choice_and_a_bad_rule_names_itself():
    assert normalize({"ts": 1, "account_id": "a", "identity": IDS})["account_id"] == "a"
    with pytest.raises(ValueError, match="end_user, key_user, key"):
        parse_rule("user,key")


def test_the_guardrail_and_the_logger_send_the_same_identities():
    """What LiteLLM hands each hook for one call: the key (UserAPIKeyAuth) and the logging kwargs."""
    data = {"model": "mock-model", "user": "eu-1", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 64, "metadata": {"requester_ip_address": "198.51.100.4"}}
    key = {"token": "hash-1", "user_id": "ku-1", "end_user_id": "eu-1"}
    guard = event_from_litellm(data, key)
    kwargs = {"litellm_call_id": "c1", "litellm_params": {"proxy_server_request": {"body": data}},
              "standard_logging_object": {"id": "c1", "startTime": 1772582400.0, "model_group": "mock-model",
                                          "model_parameters": {"max_tokens": 64, "reasoning_effort": "high",
                                                               "n": 3, "logprobs": True, "top_logprobs": 5},
                                          "metadata": {"user_api_key_hash": "hash-1", "user_api_key_user_id": "ku-1",
                                                       "user_api_key_end_user_id": "eu-1"}, "messages": {}}}
    from distillguard.ingest.litellm import map_litellm

    (rec, extra), = map_litellm(DistillguardLogger.record(kwargs))
    logged = normalize(rec, extra)
    for rule in ("end_user,key_user,key", "key_user,key", "key"):
        set_rule(rule)
        assert normalize(dict(guard))["account_id"] == normalize(rec, extra)["account_id"]
    assert (logged["max_output_tokens"], logged["reasoning_effort"], logged["n"], logged["logprobs"],
            logged["top_logprobs"], logged["prompt"], logged["model"]) == (64, "high", 3, True, 5, "hi", "mock-model")


SPEND_ROW = {  # a LiteLLM 1.106.2 LiteLLM_SpendLogs row as row_to_json exports it
    "request_id": "chatcmpl-1", "call_type": "acompletion", "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
    "spend": 1.4e-05, "total_tokens": 39, "prompt_tokens": 21, "completion_tokens": 18,
    "startTime": "2026-12-07T05:00:00.123+00:00", "endTime": "2026-12-07T05:00:01.456+00:00",
    "model": "gpt-4o-mini", "model_id": "3bbe21b2", "model_group": "mock-model", "custom_llm_provider": "openai",
    "api_base": "http://127.0.0.1:9/v1", "user": "ku-7", "end_user": "eu-7", "team_id": None,
    "requester_ip_address": "198.51.100.7", "messages": "{}", "response": "{}",
    "metadata": {"user_api_key_user_id": "ku-7", "user_api_key_end_user_id": "eu-7",
                 "user_agent": "harvester/2.0", "status": "success"},
    "proxy_server_request": {"model": "mock-model", "user": "eu-7", "max_tokens": 300, "n": 2, "logprobs": True,
                             "top_logprobs": 3, "temperature": 0.7,
                             "messages": [{"role": "system", "content": "Be a tutor."},
                                          {"role": "user", "content": "Explain step by step."}]},
}


def test_a_spend_log_row_takes_its_prompt_from_the_request_body_and_the_model_group(store, tmp_path):
    p = tmp_path / "spend.jsonl"
    p.write_text(json.dumps(SPEND_ROW) + "\n")
    assert ingest_files([p], store, progress=False).as_dict()["accepted"] == 1
    ev = dict(zip(("account_id", "model", "prompt", "system_prompt", "n", "top_logprobs", "user_agent"),
                  store.con.execute("SELECT account_id, model, prompt, system_prompt, n, top_logprobs, user_agent "
                                    "FROM events").fetchone()))
    assert ev == {"account_id": "ku-7", "model": "mock-model", "prompt": "Explain step by step.",
                  "system_prompt": "Be a tutor.", "n": 2, "top_logprobs": 3, "user_agent": "harvester/2.0"}


def test_a_json_array_export_with_rows_over_the_sniff_size_is_read_as_spend_logs(store, tmp_path):
    big = [{**SPEND_ROW, "request_id": f"r{i}",
            "proxy_server_request": {**SPEND_ROW["proxy_server_request"],
                                     "messages": [{"role": "user", "content": "x" * 90_000}]}} for i in range(3)]
    p = tmp_path / "spend.json"
    p.write_text(json.dumps(big))  # json_agg: one array, rows larger than the 64 KiB detection sample
    r = ingest_files([p], store, progress=False)
    assert r.as_dict() == {"read": 3, "accepted": 3, "quarantined": 0, "duplicates": 0}
    assert r.files[0]["format"] == "litellm"


def test_subject_flag_on_ingest(tmp_path, monkeypatch, capsys):
    from conftest import run_main

    p = tmp_path / "spend.jsonl"
    p.write_text(json.dumps(SPEND_ROW) + "\n")
    db = tmp_path / "s.duckdb"
    code, _, err = run_main(monkeypatch, capsys, "ingest", p, "--db", db, "--subject", "key_user,key", "--quiet")
    assert code == 0, err
    with EventStore(db) as s:
        assert s.con.execute("SELECT account_id FROM events").fetchone()[0] == "ku-7"
