"""``distillguard serve``: the real-time decision service (FastAPI + uvicorn).

>>> from distillguard.serve import Engine, EngineConfig, create_app   # doctest: +SKIP

Names load lazily, so a gateway plug-in (:mod:`distillguard.serve.gateways`)
imports without the engine's data stack. See docs/serve.md.
"""
from __future__ import annotations

__all__ = ["Engine", "EngineConfig", "create_app", "run_server"]


def __getattr__(name):
    if name in ("Engine", "EngineConfig"):
        from distillguard.serve import engine

        return getattr(engine, name)
    raise AttributeError(name)


def create_app(engine, max_body_bytes: int = 10 * 1024 * 1024, start_engine: bool = True, **security):
    """The service app; ``security`` as :func:`distillguard.serve.app.create_app` takes it (tokens, proxy, insecure)."""
    from distillguard.serve.app import create_app as _create

    return _create(engine, max_body_bytes=max_body_bytes, start_engine=start_engine, **security)


def run_server(app, host: str = "127.0.0.1", port: int = 8787, log_level: str = "warning") -> None:
    """Run ``app`` under uvicorn (uvloop and httptools when installed)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                proxy_headers=False)  # forwarded headers count only from --trusted-proxy (distillguard.auth)
