"""Per-account running aggregates: the batch feature columns, updated one event at a time.

:class:`AccountState` keeps counts, sums and small distinct sets per account
and turns them into one row with the columns of
:data:`distillguard.features.FEATURE_COLUMNS`, so the behaviour
:class:`~distillguard.signals.base.Signal` classes score it exactly as the scan
does. Where the batch query is exact and a stream cannot be in bounded memory,
the approximation is stated: distinct sets stop growing at
:data:`DISTINCT_CAP` values, the gap median is taken over a reservoir of
:data:`GAP_RESERVOIR` gaps, and gaps are measured against the latest
timestamp seen (events arriving out of order count a zero gap).

Two backends hold the states: :class:`MemoryState` (one process, the default)
and :class:`RedisState` (several processes share accounts, links, immunity and
labels through one Redis server).
"""
from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from dataclasses import dataclass, field

import orjson

from distillguard.features.behaviour import HIGH_EFFORT, RELEASE_GRACE_HOURS

__all__ = ["AccountState", "MemoryState", "RedisState", "DISTINCT_CAP", "GAP_RESERVOIR", "make_state"]

DISTINCT_CAP = 4096
GAP_RESERVOIR = 1024
_HOUR_US = 3_600_000_000
_DAY_US = 86_400_000_000
_GRACE_US = RELEASE_GRACE_HOURS * _HOUR_US
_KEEP_BUCKETS = 48


def _us(ts) -> int:
    """A datetime (aware) or epoch microseconds -> epoch microseconds."""
    if isinstance(ts, int):
        return ts
    return int(ts.timestamp() * 1_000_000) if ts.tzinfo else int(ts.replace(tzinfo=None).timestamp() * 1e6)


def _stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _add(s: set, v) -> None:
    if v is not None and len(s) < DISTINCT_CAP:
        s.add(v)


@dataclass
class AccountState:
    """Running aggregates of one account (see the module docstring)."""

    account_id: str
    n: int = 0
    first_us: int | None = None
    last_us: int | None = None
    org_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    max_out_sum: float = 0.0
    max_out_n: int = 0
    fanout: int = 0
    n_sum: int = 0
    logprobs: int = 0
    temp_zero: int = 0
    high_effort: int = 0
    batch: int = 0
    errors: int = 0
    unthreaded: int = 0
    prompt_chars: int = 0
    prompt_n: int = 0
    gap_n: int = 0
    gap_mean: float = 0.0
    gap_m2: float = 0.0
    gaps: list = field(default_factory=list)
    hours: list = field(default_factory=lambda: [0] * 24)
    buckets: dict = field(default_factory=dict)
    peak_bucket: int = 0
    models: dict = field(default_factory=dict)  # model -> [first_use_us, count]
    days: set = field(default_factory=set)
    conversations: set = field(default_factory=set)
    ips: set = field(default_factory=set)
    uas: set = field(default_factory=set)
    temps: set = field(default_factory=set)
    prompts: set = field(default_factory=set)
    version: int = 0

    # -- updating -------------------------------------------------------------
    def update(self, ev: dict) -> None:
        """Fold one canonical event (a dict as :func:`distillguard.ingest.normalize.normalize` returns)."""
        t = _us(ev["ts"])
        self.n += 1
        self.version += 1
        if self.last_us is not None:
            gap = max(0.0, (t - self.last_us) / 1e6)
            self.gap_n += 1
            d = gap - self.gap_mean
            self.gap_mean += d / self.gap_n
            self.gap_m2 += d * (gap - self.gap_mean)
            if len(self.gaps) < GAP_RESERVOIR:
                self.gaps.append(gap)
            else:
                j = random.randrange(self.gap_n)
                if j < GAP_RESERVOIR:
                    self.gaps[j] = gap
        self.first_us = t if self.first_us is None else min(self.first_us, t)
        self.last_us = t if self.last_us is None else max(self.last_us, t)
        if ev.get("org_id") is not None:
            self.org_id = ev["org_id"] if self.org_id is None else max(self.org_id, ev["org_id"])
        self.input_tokens += ev.get("input_tokens") or 0
        self.output_tokens += ev.get("output_tokens") or 0
        self.reasoning_tokens += ev.get("reasoning_tokens") or 0
        if ev.get("max_output_tokens") is not None:
            self.max_out_sum += ev["max_output_tokens"]
            self.max_out_n += 1
        nn = ev.get("n") if ev.get("n") is not None else 1
        self.n_sum += nn
        self.fanout += nn > 1
        self.logprobs += bool(ev.get("logprobs")) or (ev.get("top_logprobs") or 0) > 0
        temp = ev.get("temperature")
        self.temp_zero += (1.0 if temp is None else temp) == 0
        _add(self.temps, temp)
        eff = ev.get("reasoning_effort")
        self.high_effort += eff is not None and eff.lower() in HIGH_EFFORT
        self.batch += bool(ev.get("is_batch"))
        self.errors += ev.get("status") in ("error", "refused")
        conv = ev.get("conversation_id")
        if conv is None:
            self.unthreaded += 1
        else:
            _add(self.conversations, conv)
        _add(self.ips, ev.get("client_ip"))
        _add(self.uas, ev.get("user_agent"))
        _add(self.days, t // _DAY_US)
        self.hours[(t // _HOUR_US) % 24] += 1
        b = t // _HOUR_US
        c = self.buckets.get(b, 0) + 1
        self.buckets[b] = c
        self.peak_bucket = max(self.peak_bucket, c)
        if len(self.buckets) > _KEEP_BUCKETS:
            for old in sorted(self.buckets)[: len(self.buckets) - _KEEP_BUCKETS]:
                del self.buckets[old]
        model = ev.get("model")
        if model is not None:
            m = self.models.get(model)
            if m is None:
                self.models[model] = [t, 1]
            else:
                m[0] = min(m[0], t)
                m[1] += 1
        prompt = ev.get("prompt")
        if prompt is not None:
            self.prompt_chars += len(prompt)
            self.prompt_n += 1
            if len(self.prompts) < DISTINCT_CAP:
                self.prompts.add(_stable_hash(prompt))

    # -- the feature row ----------------------------------------------------------
    def features(self, released: dict[str, int] | None = None, data_start_us: int | None = None) -> dict:
        """One row with the columns of :data:`~distillguard.features.FEATURE_COLUMNS`.

        ``released`` maps model -> first time it was seen in the traffic and
        ``data_start_us`` is the earliest event seen (for ``pivot_share``).
        """
        n = max(self.n, 1)
        gap_std = math.sqrt(self.gap_m2 / (self.gap_n - 1)) if self.gap_n > 1 else None
        gap_mean = self.gap_mean if self.gap_n else None
        total = sum(self.hours)
        ent = 0.0
        for c in self.hours:
            if c:
                p = c / total
                ent -= p * math.log(p)
        pivot = 0
        if released and data_start_us is not None:
            for model, (first_use, count) in self.models.items():
                rel = released.get(model)
                if rel is not None and rel > data_start_us + _GRACE_US and first_use < rel + _GRACE_US:
                    pivot += count
        gaps = sorted(self.gaps)
        median = None
        if gaps:
            k = len(gaps)
            median = gaps[k // 2] if k % 2 else 0.5 * (gaps[k // 2 - 1] + gaps[k // 2])
        return {
            "account_id": self.account_id,
            "n_events": self.n,
            "org_id": self.org_id,
            "active_days": len(self.days),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "output_tokens_mean": self.output_tokens / n,
            "max_output_tokens_mean": self.max_out_sum / self.max_out_n if self.max_out_n else None,
            "output_ratio": self.output_tokens / max(self.input_tokens, 1),
            "fanout_share": self.fanout / n,
            "n_mean": self.n_sum / n,
            "logprobs_share": self.logprobs / n,
            "temperature_zero_share": self.temp_zero / n,
            "temperature_distinct": len(self.temps),
            "high_effort_share": self.high_effort / n,
            "batch_share": self.batch / n,
            "error_share": self.errors / n,
            "conversation_share": (len(self.conversations) + self.unthreaded) / n,
            "ip_distinct": len(self.ips),
            "user_agent_distinct": len(self.uas),
            "model_distinct": len(self.models),
            "prompt_chars_mean": self.prompt_chars / self.prompt_n if self.prompt_n else None,
            "prompt_distinct_share": len(self.prompts) / n,
            "gap_median": median,
            "gap_cv": (gap_std / max(gap_mean, 1e-9)) if gap_std is not None else None,
            "hour_entropy": ent / math.log(24.0) if total else 0.0,
            "active_hours": sum(1 for c in self.hours if c),
            "peak_hour_share": self.peak_bucket / n,
            "pivot_share": pivot / n,
        }

    # -- (de)serialising for Redis -----------------------------------------------
    _SETS = ("days", "conversations", "ips", "uas", "temps", "prompts")

    def dumps(self) -> bytes:
        d = {k: v for k, v in vars(self).items()}
        for k in self._SETS:
            d[k] = list(d[k])
        d["buckets"] = [[k, v] for k, v in self.buckets.items()]
        return orjson.dumps(d)

    @classmethod
    def loads(cls, raw: bytes) -> "AccountState":
        d = orjson.loads(raw)
        for k in cls._SETS:
            d[k] = set(d[k])
        d["buckets"] = {int(k): v for k, v in d["buckets"]}
        return cls(**d)


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
            for ev in events:
                acc = ev["account_id"]
                st = self.accounts.get(acc)
                if st is None:
                    st = self.accounts[acc] = AccountState(acc)
                st.update(ev)
                t = _us(ev["ts"])
                self.start_us = t if self.start_us is None else min(self.start_us, t)
                m = ev.get("model")
                if m is not None and (m not in self.models or t < self.models[m]):
                    self.models[m] = t

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

    Account aggregates are one key each, updated with optimistic
    transactions (WATCH/MULTI), so concurrent writers never lose an event;
    immunity keys expire by themselves.
    """

    shared = True

    def __init__(self, url: str, prefix: str = "dg:"):
        import redis

        self.r = redis.Redis.from_url(url)
        self.p = prefix

    def _k(self, *parts) -> str:
        return self.p + ":".join(parts)

    def apply(self, events: list[dict]) -> None:
        import redis

        by_acc: dict[str, list] = {}
        for ev in events:
            by_acc.setdefault(ev["account_id"], []).append(ev)
        models: dict[str, int] = {}
        start = None
        for acc, evs in by_acc.items():
            key = self._k("acct", acc)
            while True:
                try:
                    with self.r.pipeline() as pipe:
                        pipe.watch(key)
                        raw = pipe.get(key)
                        st = AccountState.loads(raw) if raw else AccountState(acc)
                        for ev in evs:
                            st.update(ev)
                        pipe.multi()
                        pipe.set(key, st.dumps())
                        pipe.execute()
                    break
                except redis.WatchError:
                    continue
            for ev in evs:
                t = _us(ev["ts"])
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
