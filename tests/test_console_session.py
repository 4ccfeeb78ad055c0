"""Console sessions behind a TLS-terminating proxy, and sign-out as a checked action (docs/security.md).

A real service on loopback (uvicorn, httpx); the loopback client plays the proxy when 127.0.0.1 is trusted,
and an outsider when only 10.0.0.0/8 is."""
from __future__ import annotations

import re

import httpx
import pytest

from distillguard.serve import Engine, EngineConfig
from distillguard.serve.testing import fixture_store, make_token, serving

TLS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def service(tmp_path):
    def start(proxies):
        db = fixture_store(tmp_path / f"dg-{len(proxies[0])}.duckdb")
        token = make_token(db, "analyst", "alice")
        engine = Engine(EngineConfig(db=str(db), refresh_seconds=3600, flush_seconds=0.2))
        return serving(engine, trusted_proxy_header="X-Forwarded-User", trusted_proxies=proxies), token
    return start


def _sign_in(url, token, headers=None):
    r = httpx.post(url + "/login", data={"token": token, "next": "/audit"}, headers=headers or {},
                   follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["set-cookie"]


def _csrf(url, cookie, headers=None) -> str:
    page = httpx.get(url + "/audit", headers={"cookie": cookie, **(headers or {})}).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.mark.parametrize("proxies, secure", [(("127.0.0.1/32",), True), (("10.0.0.0/8",), False)],
                         ids=["tls-at-trusted-proxy", "header-from-elsewhere"])
def test_the_session_cookie_is_secure_when_a_trusted_proxy_says_tls(service, proxies, secure):
    ctx, token = service(proxies)
    with ctx as url:
        cookie = _sign_in(url, token, TLS)
        assert ("; secure" in cookie.lower()) is secure, cookie
        assert "; secure" not in _sign_in(url, token).lower()  # plain HTTP from the proxy: not Secure


def test_forms_posted_through_a_tls_proxy_are_same_origin(service):
    ctx, token = service(("127.0.0.1/32",))
    with ctx as url:
        cookie = _sign_in(url, token, TLS).split(";", 1)[0]
        host = url.split("://", 1)[1]
        form = {"csrf": _csrf(url, cookie, TLS), "action": "escalate", "target_kind": "campaign",
                "target_id": "C-test", "reason": "legal hold", "back": "/"}
        r = httpx.post(url + "/actions", data=form, follow_redirects=False,
                       headers={"cookie": cookie, "origin": f"https://{host}", **TLS})
        assert r.status_code == 303, r.text  # the browser's origin is https://host, as the proxy serves it
        r = httpx.post(url + "/actions", data=form, follow_redirects=False,
                       headers={"cookie": cookie, "origin": "https://evil.example", **TLS})
        assert r.status_code == 403


def test_sign_out_needs_the_form_token(service):
    ctx, token = service(("10.0.0.0/8",))
    with ctx as url:
        cookie = _sign_in(url, token).split(";", 1)[0]
        assert httpx.post(url + "/logout", headers={"cookie": cookie}, follow_redirects=False).status_code == 403
        assert httpx.post(url + "/logout", data={"csrf": "guessed"}, headers={"cookie": cookie},
                          follow_redirects=False).status_code == 403
        assert httpx.get(url + "/audit", headers={"cookie": cookie}).status_code == 200  # still signed in
        r = httpx.post(url + "/logout", data={"csrf": _csrf(url, cookie)}, headers={"cookie": cookie},
                       follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert httpx.get(url + "/audit", headers={"cookie": cookie}).status_code == 401  # the session is over
