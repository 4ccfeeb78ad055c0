"""Per-account running state of the decision service, and where it is kept.

:class:`AccountState` folds events into the partial aggregates of
:data:`distillguard.features.behaviour.BEHAVIOUR`, the same declaration the
scan's batch query is built from, so its feature row has the columns and the
values of :func:`distillguard.features.account_features` on the same events
(``tests/test_features_parity.py``). Where a stream cannot be exact in bounded
memory the aggregator says so (distinct counts beyond
:data:`~distillguard.features.aggregators.DISTINCT_EXACT` values, gap medians
beyond :data:`~distillguard.features.timing.GAP_SAMPLE` gaps).

Two backends hold the states: :class:`MemoryState` (one process, the default)
and :class:`RedisState` (several processes share accounts, links, immunity and
labels through one Redis server).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import orjson

from distillguard.features.aggregators import to_us
from distillguard.features.behaviour import BEHAVIOUR

__all__ = ["AccountState", "MemoryState", "RedisState", "make_state"]


@dataclass
class AccountState:
    """The running aggregates of one account (see the module docstring)."""

    account_id: str
    parts: list = field(default_factory=BEHAVIOUR.start)
    version: int = 0

    def update(self, ev: dict, us: int | None = None) -> None:
        """Fold one canonical event (a dict as :func:`distillguard.ingest.normalize.normalize` returns; ``us``: its
        time in epoch microseconds, when the caller has it)."""
        BEHAVIOUR.add(self.parts, ev, us)
        self.version += 1

    @property
    def n(self) -> int:
        """Events folded in."""
        return BEHAVIOUR.value(self.parts, "n_events")

    def features(self, released: dict[str, int] | None = None, data_start_us: int | None = None) -> dict:
        """One row with the columns of :data:`~distillguard.features.FEATURE_COLUMNS`.

        ``released`` maps model -> first time it was seen in the traffic and
        ``data_start_us`` is the earliest event seen (for ``pivot_share``).
        """
        return BEHAVIOUR.row(self.account_id, self.parts, {"released": released, "start_us": data_start_us})

    def dumps(self) -> bytes:
        return orjson.dumps({"account_id": self.account_id, "version": self.version, "parts": BEHAVIOUR.dump(self.parts)})

    @classmethod
    def loads(cls, raw: bytes) -> "AccountState":
        d = orjson.loads(raw)
        return cls(d["account_id"], BEHAVIOUR.load(d["parts"]), d["version"])


class MemoryState:
    """Embedded in-process state (the default): dicts guarded by one lock."""

    shared = False

    def __init__(self):
        self.lock = threading.RLock()
        self.accounts: dict[str, AccountState] = {}
        self.meta: dict[str, dict] = {}
        self.links: dict[str, dict] = {}
        self.immune: dict[str, float] = {}
        self.flags: dict[str, str] = {}
        self.decisions: dict[str, tuple[str, float]] = {}
        self.challenges: dict[str, list] = {}  # challenge id -> [account, expires, used]
        self.models: dict[str, int] = {}
        self.start_us: int | None = None

    def apply(self, events: list[dict]) -> None:
        with self.lock:
            accounts, models, start = self.accounts, self.models, self.start_us
            for ev in events:
                t = to_us(ev["ts"])
                acc = ev["account_id"]
                st = accounts.get(acc)
                if st is None:
                    st = accounts[acc] = AccountState(acc)
                st.update(ev, t)
                if start is None or t < start:
                    start = t
                m = ev.get("model")
                if m is not None and (m not in models or t < models[m]):
                    models[m] = t
            self.start_us = start

    def account(self, account_id: str) -> AccountState | None:
        return self.accounts.get(account_id)

    def release_times(self) -> tuple[dict, int | None]:
        return self.models, self.start_us

    def put_meta(self, account_id: str, meta: dict) -> None:
        with self.lock:
            cur = self.meta.get(account_id, {})
            cur.update({k: v for k, v in meta.items() if v is not None})
            self.meta[account_id] = cur

    def get_meta(self, account_id: str) -> dict | None:
        return self.meta.get(account_id)

    def add_links(self, account_id: str, links: dict[str, list]) -> None:
        with self.lock:
            cur = self.links.setdefault(account_id, {})
            for cid, hits in links.items():
                have = cur.setdefault(cid, [])
                for h in hits:
                    if h not in have:
                        have.append(h)

    def get_links(self, account_id: str) -> dict:
        return self.links.get(account_id) or {}

    def grant_immunity(self, account_id: str, ttl: int) -> float:
        until = time.time() + ttl
        self.immune[account_id] = until
        return until

    def immune_until(self, account_id: str) -> float | None:
        u = self.immune.get(account_id)
        return u if u is not None and u > time.time() else None

    def set_flag(self, account_id: str, flag: str | None) -> None:
        if flag is None:
            self.flags.pop(account_id, None)
        else:
            self.flags[account_id] = flag

    def get_flag(self, account_id: str) -> str | None:
        return self.flags.get(account_id)

    def put_decision(self, decision_id: str, account_id: str, ttl: int) -> None:
        now = time.time()
        self.decisions[decision_id] = (account_id, now + max(ttl, 3600))
        if len(self.decisions) > 200_000:
            for k in [k for k, (_, exp) in self.decisions.items() if exp < now][:100_000]:
                del self.decisions[k]
            while len(self.decisions) > 200_000:
                del self.decisions[next(iter(self.decisions))]

    def get_decision(self, decision_id: str) -> str | None:
        d = self.decisions.get(decision_id)
        return d[0] if d else None

    def put_challenge(self, challenge_id: str, account_id: str, ttl: int) -> None:
        now = time.time()
        with self.lock:
            self.challenges[challenge_id] = [account_id, now + max(ttl, 1), False]
            if len(self.challenges) > 200_000:
                for k in [k for k, c in self.challenges.items() if c[1] < now]:
                    del self.challenges[k]

    def take_challenge(self, challenge_id: str) -> tuple[str | None, bool]:
        """``(account, already_used)`` of a live challenge, marking it used; ``(None, False)`` when unknown or expired."""
        with self.lock:
            c = self.challenges.get(challenge_id)
            if c is None or c[1] < time.time():
                return None, False
            used, c[2] = c[2], True
            return c[0], used

    def forget(self, account_id: str) -> None:
        """Drop everything held about an account (erasure: ``store forget``)."""
        with self.lock:
            for d in (self.accounts, self.meta, self.links, self.immune, self.flags):
                d.pop(account_id, None)
            for k in [k for k, (a, _) in self.decisions.items() if a == account_id]:
                del self.decisions[k]
            for k in [k for k, c in self.challenges.items() if c[0] == account_id]:
                del self.challenges[k]

    def ping(self) -> bool:
        return True

    def n_accounts(self) -> int:
        return len(self.accounts)


class RedisState:
    """State shared by several service processes through one Redis server.

    Account aggregates are one key each, updated optimistically (read, fold,
    compare-and-set, retry what another writer changed: :meth:`_fold`), so
    concurrent writers never lose an event; immunity keys expire by themselves.
    """

    shared = True

    def __init__(self, url: str, prefix: str = "dg:"):
        import redis

        self.r = redis.Redis.from_url(url)
        self.p = prefix
        self._cas = self.r.register_script(self._CAS)

    def _k(self, *parts) -> str:
        return self.p + ":".join(parts)

    # Compare-and-set of many account keys in one atomic server-side step: a key is written only if it still
    # holds what this process read (compared by SHA-1; '' for a key that did not exist); the script returns
    # the (1-based) positions of the keys another writer changed meanwhile.
    _CAS = ("local lost = {} for i = 1, #KEYS do local cur = redis.call('GET', KEYS[i]) "
            "if (cur and redis.sha1hex(cur) or '') == ARGV[2 * i - 1] then redis.call('SET', KEYS[i], ARGV[2 * i]) "
            "else lost[#lost + 1] = i end end return lost")
    CAS_KEYS = 1000
    """Account keys per compare-and-set step (bounds how long one step holds the Redis server)."""

    def _fold(self, by_acc: dict[str, list]) -> None:
        """Fold each account's events into its key, optimistically: read all keys in one round trip, fold, then
        compare-and-set them in one more; the keys someone else wrote in between are read and folded again,
        so concurrent writers never lose an event (as a WATCH/MULTI transaction per key, in two round trips
        per batch instead of three per account)."""
        import hashlib

        accs = list(by_acc)
        for lo in range(0, len(accs), self.CAS_KEYS):
            todo = accs[lo:lo + self.CAS_KEYS]
            while todo:
                keys = [self._k("acct", a) for a in todo]
                args = []
                for acc, raw in zip(todo, self.r.mget(keys)):
                    st = AccountState.loads(raw) if raw else AccountState(acc)
                    for ev in by_acc[acc]:
                        st.update(ev)
                    args += [hashlib.sha1(raw).hexdigest() if raw else "", st.dumps()]
                todo = [todo[i - 1] for i in self._cas(keys=keys, args=args)]

    def apply(self, events: list[dict]) -> None:
        by_acc: dict[str, list] = {}
        for ev in events:
            by_acc.setdefault(ev["account_id"], []).append(ev)
        self._fold(by_acc)
        models: dict[str, int] = {}
        start = None
        for evs in by_acc.values():
            for ev in evs:
                t = to_us(ev["ts"])
                start = t if start is None else min(start, t)
                m = ev.get("model")
                if m is not None and (m not in models or t < models[m]):
                    models[m] = t
        if start is not None:
            # min-merge: a small Lua script keeps the earliest time per model
            script = ("for i=1,#KEYS do local cur=redis.call('HGET', ARGV[1], KEYS[i]); "
                      "if (not cur) or tonumber(cur) > tonumber(ARGV[i+1]) then "
                      "redis.call('HSET', ARGV[1], KEYS[i], ARGV[i+1]) end end return 1")
            names = list(models) + ["__start__"]
            vals = [models[m] for m in models] + [start]
            self.r.eval(script, len(names), *names, self._k("models"), *vals)

    def account(self, account_id: str) -> AccountState | None:
        raw = self.r.get(self._k("acct", account_id))
        return AccountState.loads(raw) if raw else None

    def release_times(self) -> tuple[dict, int | None]:
        h = {k.decode(): int(v) for k, v in self.r.hgetall(self._k("models")).items()}
        start = h.pop("__start__", None)
        return h, start

    def put_meta(self, account_id: str, meta: dict) -> None:
        cur = self.get_meta(account_id) or {}
        cur.update({k: v for k, v in meta.items() if v is not None})
        self.r.set(self._k("meta", account_id), orjson.dumps(cur, default=str))

    def get_meta(self, account_id: str) -> dict | None:
        raw = self.r.get(self._k("meta", account_id))
        return orjson.loads(raw) if raw else None

    def add_links(self, account_id: str, links: dict[str, list]) -> None:
        for cid, hits in links.items():
            self.r.sadd(self._k("links", account_id, cid), *[orjson.dumps(h) for h in hits])
            self.r.sadd(self._k("linkc", account_id), cid)

    def get_links(self, account_id: str) -> dict:
        out = {}
        for cid in self.r.smembers(self._k("linkc", account_id)):
            c = cid.decode()
            out[c] = [orjson.loads(h) for h in self.r.smembers(self._k("links", account_id, c))]
        return out

    def grant_immunity(self, account_id: str, ttl: int) -> float:
        until = time.time() + ttl
        self.r.set(self._k("immune", account_id), str(until), ex=max(1, int(ttl)))
        return until

    def immune_until(self, account_id: str) -> float | None:
        v = self.r.get(self._k("immune", account_id))
        return float(v) if v else None

    def set_flag(self, account_id: str, flag: str | None) -> None:
        if flag is None:
            self.r.delete(self._k("flag", account_id))
        else:
            self.r.set(self._k("flag", account_id), flag)

    def get_flag(self, account_id: str) -> str | None:
        v = self.r.get(self._k("flag", account_id))
        return v.decode() if v else None

    def put_decision(self, decision_id: str, account_id: str, ttl: int) -> None:
        self.r.set(self._k("decision", decision_id), account_id, ex=max(ttl, 3600))

    def get_decision(self, decision_id: str) -> str | None:
        v = self.r.get(self._k("decision", decision_id))
        return v.decode() if v else None

    def put_challenge(self, challenge_id: str, account_id: str, ttl: int) -> None:
        self.r.set(self._k("challenge", challenge_id), account_id, ex=max(ttl, 1))

    _TAKE = ("local v = redis.call('GET', KEYS[1]) if not v then return false end "
             "if string.sub(v, 1, 1) == '!' then return v end "
             "redis.call('SET', KEYS[1], '!' .. v, 'KEEPTTL') return v")

    def take_challenge(self, challenge_id: str) -> tuple[str | None, bool]:
        v = self.r.eval(self._TAKE, 1, self._k("challenge", challenge_id))
        if not v:
            return None, False
        v = v.decode()
        return (v[1:], True) if v.startswith("!") else (v, False)

    def forget(self, account_id: str) -> None:
        """Drop everything held about an account (decision ids expire by themselves and hold only the id)."""
        keys = [self._k(k, account_id) for k in ("acct", "meta", "immune", "flag", "linkc")]
        keys += [self._k("links", account_id, c.decode()) for c in self.r.smembers(self._k("linkc", account_id))]
        self.r.delete(*keys)

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except Exception:
            return False

    def n_accounts(self) -> int:
        return sum(1 for _ in self.r.scan_iter(self._k("acct", "*"), count=1000))


def make_state(redis_url: str | None = None):
    """Redis-backed state when a URL is given, else in-process."""
    return RedisState(redis_url) if redis_url else MemoryState()
