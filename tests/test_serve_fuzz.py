"""Fuzz the live service with schemathesis against its own OpenAPI document (bounded examples), with credentials.

Each operation is called with a token of a role the access rules allow for it, so the fuzzing reaches the
handlers (the gate's own answers are tested in tests/test_security.py).
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from distillguard.serve import Engine, EngineConfig
from distillguard.auth import ROLES, AccessRules
from distillguard.serve.testing import RoleAuth, auth_headers, fixture_store, serving


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    db = fixture_store(tmp / "dg.duckdb")
    engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, fsync=False))
    auth = RoleAuth(db)
    with serving(engine) as url:
        s = schemathesis.openapi.from_url(url + "/openapi.json", headers=auth_headers(auth.token("reader")))
        s.config.update(base_url=url)
        s.auth_for = auth
        yield s


def test_no_server_errors_and_documented_shapes(api_schema):
    """Whatever the body, the service answers without a 5xx, and 2xx bodies match the documented models.

    Each operation is driven by its Hypothesis strategy (schemathesis' pytest
    plug-in does not load under pytest 9, so the loop is explicit).
    """
    from hypothesis import given

    ran = []
    rules = AccessRules.load()
    for result in api_schema.get_all_operations():
        op = result.ok()
        allowed = rules.roles(op.method.upper(), op.path)
        role = next((r for r in ROLES if r in allowed), None)
        assert role or rules.is_open(op.method.upper(), op.path), f"{op.label}: no role may call it"
        headers = auth_headers(api_schema.auth_for.token(role)) if role else {}

        @given(case=op.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def run(case):
            r = case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], headers=headers)
            assert r.status_code not in (401, 403), (op.label, role, r.status_code)

        run()
        ran.append(op.label)
    assert len(ran) >= 12, ran
