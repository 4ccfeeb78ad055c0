"""Vectorised event generation and streaming output.

Per population, accounts are processed in chunks of at most ``CHUNK_EVENTS``
planned events. Inside a chunk everything is numpy arrays (timestamps, tokens,
parameters, table indices) and Arrow ``take`` + element-wise joins (prompts,
ids); nothing loops per event in Python. Each chunk is written as one row
group, so memory stays bounded by the chunk size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.errors import UsageError
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA
from distillguard.sim.bank import Bank
from distillguard.sim.grammar_data import KINDS, LANGS
from distillguard.sim.responses import BUCKET_EDGES, KIND_TO_RKIND, N_VARIANTS, RKINDS, build_response_bank
from distillguard.sim.scenario import Scenario, load_scenario
from distillguard.sim.world import PopAccounts, Tables, build_world

__all__ = ["simulate", "LABEL_SCHEMA", "CHUNK_EVENTS"]

CHUNK_EVENTS = 100_000
LABEL_SCHEMA = pa.schema([
    pa.field("account_id", pa.string(), nullable=False),
    pa.field("campaign_id", pa.string()),
    pa.field("operator_id", pa.string()),  # who runs the campaign; one operator may run several
    pa.field("archetype", pa.string(), nullable=False),
    pa.field("is_attack", pa.bool_(), nullable=False),
])

_LOOSE_SCHEMA = EVENT_SCHEMA.set(0, pa.field("event_id", pa.string()))  # ids come last

# local-hour activity profiles (relative weights)
_DIURNAL = np.array([1.0, .6, .4, .3, .3, .4, .8, 1.5, 2.5, 3.2, 3.5, 3.4, 3.0, 3.2, 3.4, 3.3, 3.1, 3.0, 3.2, 3.6, 3.8, 3.4, 2.6, 1.6])
_BUSINESS = np.array([.15, .1, .1, .1, .1, .2, .4, 1.0, 2.5, 4.5, 5.0, 5.0, 3.5, 4.5, 5.0, 4.8, 4.2, 3.0, 1.5, .9, .7, .5, .35, .2])
_TPC = np.array([0.27, 0.75, 0.32, 0.28])  # tokens per character by language (en, zh, ru, es)
_EFFORT_MULT = {"low": 0.4, "medium": 1.0, "high": 2.2}


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _cum(p: np.ndarray) -> np.ndarray:
    c = np.cumsum(p / p.sum())
    c[-1] = 1.0
    return c


class _Ctx:
    """Run-wide tables shared by all chunks."""

    def __init__(self, sc: Scenario, bank: Bank, tables: Tables, seed: int):
        self.sc = sc
        self.bank = bank
        self.seed = seed
        self.seg = pa.array(bank.seg_texts, pa.string())
        self.fill = pa.array(bank.fill_texts, pa.string())
        self.ip = pa.array(tables.ip, pa.string())
        self.ua = pa.array(tables.ua, pa.string())
        self.key = pa.array(tables.key, pa.string())
        self.sys = pa.array(tables.sys or [""], pa.string())
        texts, index = build_response_bank(LANGS, sc.response_max_chars, seed)
        self.resp = pa.array(texts, pa.string())
        self.resp_base = np.zeros((len(RKINDS), len(LANGS)), dtype=np.int64)
        for (rk, lg), off in index.items():
            self.resp_base[RKINDS.index(rk), LANGS.index(lg)] = off
        self.kind_rkind = np.array([RKINDS.index(KIND_TO_RKIND[k]) for k in KINDS], dtype=np.int64)
        self.refusal = RKINDS.index("refusal")
        self.echo_rkinds = [RKINDS.index(k) for k in ("reasoning", "answer", "code", "grade", "qa")]
        weekday0 = sc.start.weekday()
        self.weekday0 = weekday0
        self.models: list[str] = []
        self._model_idx: dict[str, int] = {}
        rel = sc.release
        self.release_s = float(rel["at_day"]) * 86400.0 if rel else None
        self.release_model = self.model_id(rel["name"]) if rel else -1
        self.reasoning_models = set(sc.reasoning_models)

    def model_id(self, name: str) -> int:
        if name not in self._model_idx:
            self._model_idx[name] = len(self.models)
            self.models.append(name)
        return self._model_idx[name]


def _param_values(spec_values, kind: str):
    """Values list -> (numeric array with NaN/-1 for null, validity)."""
    vals = list(spec_values)
    if kind == "float":
        return np.array([np.nan if v is None else float(v) for v in vals])
    if kind == "int":
        return np.array([-1 if v is None else int(v) for v in vals], dtype=np.int64)
    if kind == "bool":
        return np.array([-1 if v is None else int(bool(v)) for v in vals], dtype=np.int64)
    return vals  # strings


def _sessions_start(ctx: _Ctx, P: PopAccounts, acc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Start time (s from window start) of each session of accounts ``acc``."""
    s = P.pop.spec["timing"]
    kind = s["start"]
    W = ctx.sc.window_s
    m = len(acc)
    af = P.active_from[acc]
    if kind in ("waves", "lockstep"):
        out = np.empty(m)
        for ci, c in enumerate(P.campaigns):
            sel = np.flatnonzero(P.camp[acc] == ci)
            if not len(sel):
                continue
            waves = c.waves
            w0 = np.searchsorted(waves + c.wave_len * 0.5, af[sel])
            nel = np.maximum(len(waves) - w0, 1)
            wi = np.minimum(w0 + (rng.random(len(sel)) * nel).astype(np.int64), len(waves) - 1)
            jit = s["wave_jitter_s"]
            if kind == "lockstep":
                off = c.offset + P.phase[acc[sel]] * jit + rng.normal(0, 2.0, len(sel))
            else:
                off = P.phase[acc[sel]] * jit + rng.normal(0, jit * 0.15, len(sel))
            out[sel] = waves[wi] + np.abs(off)
        out = np.maximum(out, af)
        ad = P.pop.spec["adapt"]
        if ad and ad.get("desync") and np.isfinite(P.adapt_s):  # after adapting: no more waves
            late = out >= P.adapt_s
            lo = np.maximum(P.adapt_s, af[late])
            out[late] = lo + rng.random(int(late.sum())) * np.maximum(W - lo, 1.0)
        return out
    if kind == "uniform":
        return af + rng.random(m) * np.maximum(W - af, 1.0)
    days = int(np.ceil(ctx.sc.days))
    d0 = np.minimum(np.floor(af / 86400.0).astype(np.int64), days - 1)
    # day weighted by weekday/weekend, restricted to the account's active days
    wd = np.where(((ctx.weekday0 + np.arange(days)) % 7) >= 5, float(s["weekend"]), 1.0)
    cum = np.r_[0.0, np.cumsum(wd)]
    lo = cum[d0]
    x = lo + rng.random(m) * (cum[days] - lo)
    day = np.clip(np.searchsorted(cum, x, side="right") - 1, d0, days - 1)
    tz = P.tz[acc]
    if kind == "batch":
        hour = s["batch_hour"] + rng.normal(0, 0.7, m)
    else:
        prof = _DIURNAL if kind == "diurnal" else _BUSINESS
        hour = np.searchsorted(_cum(prof), rng.random(m)) + rng.random(m)
    t = day * 86400.0 + (hour - tz) * 3600.0
    early = t < af
    t[early] = af[early] + rng.exponential(3 * 3600.0, int(early.sum()))
    return t


@dataclass
class _Chunk:
    """The events of one chunk of accounts once their times are placed: one entry per event, in account
    then time order. The later phases read it and draw from ``rng`` in :func:`_gen_chunk`'s order."""

    ctx: _Ctx
    P: PopAccounts
    rng: np.random.Generator
    accs: np.ndarray       # the chunk's account positions
    sess_off: np.ndarray   # per chunk account, its first session's index
    t: np.ndarray          # seconds from window start
    acc: np.ndarray        # account position
    pos: np.ndarray        # position inside its session (0 = opens it)
    gs: np.ndarray         # global session index
    rank: np.ndarray       # position among the account's events

    @property
    def spec(self) -> dict:
        return self.P.pop.spec

    @property
    def N(self) -> int:
        return len(self.t)


def _gen_chunk(ctx: _Ctx, P: PopAccounts, accs: np.ndarray, rng: np.random.Generator) -> pa.Table | None:
    """Events of accounts ``accs`` (positions in ``P``), sorted by time; event ids are set later."""
    c = _place_events(ctx, P, accs, rng)
    if c is None:
        return None
    tmpl, t_lang, t_kind, post, lead, prompt = _prompts(c)
    system_prompt, sys_len = _system_prompts(c)
    pv = _params(c)
    model, is_reasoner = _models(c)
    status, in_tok, out_tok, r_tok, response = _outputs(c, tmpl, t_lang, t_kind, lead, prompt, sys_len, pv, is_reasoner)
    infra = _infrastructure(c, post)
    ts_us = ctx.sc.start_us + np.round(c.t * 1e6).astype(np.int64)
    cols = {
        "event_id": pa.nulls(c.N, pa.string()),  # set per written chunk
        "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        "account_id": infra["account_id"],
        "api_key_id": infra["api_key_id"],
        "org_id": infra["org_id"],
        "client_ip": infra["client_ip"],
        "user_agent": infra["user_agent"],
        "client_fingerprint": pa.nulls(c.N, pa.string()),  # simulated clients log none
        "model": model,
        "prompt": prompt,
        "system_prompt": system_prompt,
        "response": response,
        "input_tokens": pa.array(in_tok, pa.int64()),
        "output_tokens": pa.array(out_tok, pa.int64()),
        "reasoning_tokens": pa.array(r_tok, pa.int64()),
        "temperature": _opt_float(pv["temperature"]),
        "top_p": _opt_float(pv["top_p"]),
        "max_output_tokens": _opt_int(pv["max_output_tokens"]),
        "n": _opt_int(pv["n"]),
        "logprobs": pa.array(pv["logprobs"] == 1, pa.bool_(), mask=pv["logprobs"] < 0),
        "top_logprobs": _opt_int(pv["top_logprobs"]),
        "reasoning_effort": pv["reasoning_effort"],
        "conversation_id": _conversations(c),
        "is_batch": pa.array(infra["is_batch"], pa.bool_()),
        "status": status,
        "extra": _end_user_extra(ctx, P, c.acc, t_kind, rng),
    }
    return pa.table(cols, schema=_LOOSE_SCHEMA)


def _opt_float(x: np.ndarray) -> pa.Array:
    return pa.array(x, pa.float64(), mask=np.isnan(x))


def _opt_int(x: np.ndarray) -> pa.Array:
    return pa.array(x, pa.int64(), mask=x < 0)


def _place_events(ctx: _Ctx, P: PopAccounts, accs: np.ndarray, rng: np.random.Generator) -> _Chunk | None:
    """Sessions per account, events spread over them with log-normal gaps; events past the window dropped."""
    spec = P.pop.spec
    W = ctx.sc.window_s
    n_i = P.n_events[accs]
    if n_i.sum() == 0:
        return None
    se = spec["sessions"]
    s_i = np.maximum(1, np.round(n_i / se["mean_len"] * rng.uniform(0.6, 1.4, len(n_i)))).astype(np.int64)
    if spec["timing"]["start"] in ("waves", "lockstep"):
        n_waves = np.array([len(P.campaigns[c].waves) for c in P.camp[accs]])
        s_i = np.minimum(s_i, np.maximum(1, (n_waves * spec["timing"]["participation"]).astype(np.int64)))
    s_i = np.minimum(s_i, n_i)
    sess_acc = np.repeat(accs, s_i)
    sess_start = _sessions_start(ctx, P, sess_acc, rng)
    sess_off = np.concatenate([[0], np.cumsum(s_i)[:-1]])
    ev_local = np.repeat(np.arange(len(accs)), n_i)
    gs = sess_off[ev_local] + (rng.random(len(ev_local)) * s_i[ev_local]).astype(np.int64)
    gs.sort()
    N = len(gs)
    first = np.r_[True, gs[1:] != gs[:-1]]
    grp_start = np.flatnonzero(first)
    grp_id = np.cumsum(first) - 1
    pos = np.arange(N) - grp_start[grp_id]
    sigma = np.full(N, float(se["gap_sigma"]))
    if np.isfinite(P.adapt_s) and "gap_sigma" in spec["adapt"]:
        sigma[sess_start[gs] >= P.adapt_s] = float(spec["adapt"]["gap_sigma"])
    gaps = np.exp(np.log(se["gap_median_s"]) + rng.standard_normal(N) * sigma)
    gaps[first] = 0.0
    cs = np.cumsum(gaps)
    offset = cs - cs[grp_start][grp_id]
    t = sess_start[gs] + offset
    acc = sess_acc[gs]
    keep = t < W
    if not keep.all():
        t, acc, pos, gs = t[keep], acc[keep], pos[keep], gs[keep]
    N = len(t)
    if N == 0:
        return None
    order = np.lexsort((t, acc))
    t, acc, pos, gs = t[order], acc[order], pos[order], gs[order]
    first_acc = np.r_[True, acc[1:] != acc[:-1]]
    acc_start = np.flatnonzero(first_acc)
    rank = np.arange(N) - acc_start[np.cumsum(first_acc) - 1]
    return _Chunk(ctx, P, rng, accs, sess_off, t, acc, pos, gs, rank)


def _prompts(c: _Chunk):
    """Prompt kind, template (the adapted pool after adapting) and fillers: random, optionally skewed to
    popular ones, or a sweep in order. Returns the template ids, their language and kind, which events come
    after adapting, the first filler of each (long answers restate it) and the prompt text."""
    ctx, P, rng, spec, N, acc = c.ctx, c.P, c.rng, c.spec, c.N, c.acc
    ks = np.searchsorted(P.kind_cum, rng.random(N), side="right")
    ks = np.minimum(ks, len(P.kinds) - 1)
    if spec["followup"] > 0 and "followup" in P.kinds:
        fu = (c.pos > 0) & (rng.random(N) < spec["followup"])
        ks[fu] = P.kinds.index("followup")
    psize = P.pool_size[acc, ks]
    col = (rng.random(N) * psize).astype(np.int64)
    tmpl = P.pool[acc, ks, col]
    post = c.t >= P.adapt_s
    if P.pool2 is not None and post.any():
        tmpl = np.where(post, P.pool2[acc, ks, col], tmpl)
    t_lang = ctx.bank.t_lang[tmpl].astype(np.int64)
    t_kind = ctx.bank.t_kind[tmpl].astype(np.int64)
    skew = float(spec["filler_skew"])
    cols = []
    for j in range(3):
        size = ctx.bank.t_size[tmpl, j]
        if spec["sweep"]:
            idx = ((P.phase[acc] * 997).astype(np.int64) + c.rank) % size
        else:
            u = rng.random(N)
            if skew != 1.0:
                u = u ** skew
            idx = (u * size).astype(np.int64)
        cols.append(ctx.bank.t_off[tmpl, j] + idx)
    segs = ctx.bank.t_seg[tmpl]
    parts = [
        ctx.seg.take(pa.array(segs[:, 0])), ctx.fill.take(pa.array(cols[0])),
        ctx.seg.take(pa.array(segs[:, 1])), ctx.fill.take(pa.array(cols[1])),
        ctx.seg.take(pa.array(segs[:, 2])), ctx.fill.take(pa.array(cols[2])),
        ctx.seg.take(pa.array(segs[:, 3])),
    ]
    return tmpl, t_lang, t_kind, post, ctx.fill.take(pa.array(cols[0])), pc.binary_join_element_wise(*parts, "")


def _system_prompts(c: _Chunk) -> tuple[pa.Array, np.ndarray]:
    ssz = c.P.sys_size[c.acc]
    has_sys = ssz > 0
    sys_idx = c.P.sys_off[c.acc] + (c.rng.random(c.N) * np.maximum(ssz, 1)).astype(np.int64)
    system_prompt = c.ctx.sys.take(pa.array(sys_idx, mask=~has_sys))
    sys_len = np.where(has_sys, np.asarray(pc.utf8_length(system_prompt).fill_null(0)), 0)
    return system_prompt, sys_len


def _params(c: _Chunk) -> dict:
    """Request parameters, sticky per account (a share of requests draws afresh). Numeric values with
    NaN / -1 for null; ``reasoning_effort`` as Arrow, with its null mask and token multiplier."""
    pr, P, rng, N, acc = c.spec["params"], c.P, c.rng, c.N, c.acc
    sticky_p = pr["sticky"]

    def draw(name: str) -> np.ndarray:
        p = np.array(pr[name]["p"], dtype=float)
        idx = P.sticky[name][acc].copy()
        fresh = rng.random(N) >= sticky_p
        if fresh.any():
            idx[fresh] = np.searchsorted(_cum(p), rng.random(int(fresh.sum())), side="right").clip(0, len(p) - 1)
        return idx

    out = {name: _param_values(pr[name]["values"], kind)[draw(name)]
           for name, kind in (("temperature", "float"), ("top_p", "float"), ("max_output_tokens", "int"), ("n", "int"),
                              ("logprobs", "bool"), ("top_logprobs", "int"))}
    out["top_logprobs"] = np.where(out["logprobs"] == 1, out["top_logprobs"], -1)
    eff_vals = pr["reasoning_effort"]["values"]
    eff_i = draw("reasoning_effort")
    out["effort_null"] = np.array([v is None for v in eff_vals])[eff_i]
    out["effort_mult"] = np.array([_EFFORT_MULT.get(str(v), 1.0) if v is not None else 1.0 for v in eff_vals])[eff_i]
    eff_tab = pa.array([("" if v is None else str(v)) for v in eff_vals], pa.string())
    out["reasoning_effort"] = eff_tab.take(pa.array(eff_i, mask=out["effort_null"]))
    return out


def _models(c: _Chunk) -> tuple[pa.Array, np.ndarray]:
    """The model asked for, with release adoption (benign) or a pivot to the new model (campaigns)."""
    ctx, P, rng, spec, N, acc, t = c.ctx, c.P, c.rng, c.spec, c.N, c.acc, c.t
    mi = np.searchsorted(P.model_cum, rng.random(N), side="right").clip(0, len(P.model_names) - 1)
    name_ids = np.array([ctx.model_id(m) for m in P.model_names])
    model_id = name_ids[mi]
    if ctx.release_s is not None:
        rel = ctx.release_s
        camps = P.campaigns
        pshare = np.array([x.pivot_share for x in camps])[P.camp[acc]]
        pdelay = np.array([x.pivot_delay_s for x in camps])[P.camp[acc]]
        ad = spec["adoption"]
        dt_h = (t - rel) / 3600.0
        p_new = np.where(dt_h > 0, ad["max_share"] * (1 - np.exp(-np.maximum(dt_h, 0) / ad["tau_h"])), 0.0)
        p_new = np.where(P.adopter[acc], p_new, 0.0)
        piv = pshare >= 0
        p_new = np.where(piv, np.where(t > rel + pdelay, pshare, 0.0), p_new)
        model_id = np.where(rng.random(N) < p_new, ctx.release_model, model_id)
    model = pa.array(ctx.models, pa.string()).take(pa.array(model_id))
    return model, np.isin(model_id, [ctx.model_id(m) for m in ctx.reasoning_models])


def _outputs(c: _Chunk, tmpl, t_lang, t_kind, lead, prompt, sys_len, pv: dict, is_reasoner):
    """Status, token counts and the response text: (status, input, output and reasoning tokens, response)."""
    ctx, rng, spec, N = c.ctx, c.rng, c.spec, c.N
    st = spec["status"]
    u = rng.random(N)
    c1, c2, c3 = st["refused"], st["refused"] + st["error"], st["refused"] + st["error"] + st["rate_limited"]
    status_i = np.where(u < c1, 1, np.where(u < c2, 2, np.where(u < c3, 3, 0)))
    status = pa.array(["ok", "refused", "error", "rate_limited"], pa.string()).take(pa.array(status_i))
    ot = spec["output_tokens"]
    max_v, n_v = pv["max_output_tokens"], pv["n"]
    out_tok = np.exp(rng.normal(np.log(ot["median"]), ot["sigma"], N))
    out_tok = np.where(max_v > 0, np.minimum(out_tok, max_v), out_tok)
    out_tok = np.maximum(1, np.round(out_tok)).astype(np.int64)
    refused = status_i == 1
    out_tok[refused] = rng.integers(12, 60, int(refused.sum()))
    per_choice = out_tok.copy()
    n_mult = np.where(n_v > 1, n_v, 1)
    out_tok = out_tok * n_mult
    rt = spec["reasoning_tokens"]
    reasons = (is_reasoner | ~pv["effort_null"]) & ~refused
    r_tok = np.where(reasons, np.round(np.exp(rng.normal(np.log(rt["median"]), rt["sigma"], N)) * pv["effort_mult"]), 0).astype(np.int64)
    failed = status_i >= 2
    out_tok[failed] = 0
    r_tok[failed] = 0
    rk = ctx.kind_rkind[t_kind]
    rk = np.where((t_kind == KINDS.index("eval")) & (per_choice > 32), RKINDS.index("reasoning"), rk)
    rk = np.where(refused, ctx.refusal, rk)
    bucket = np.searchsorted(BUCKET_EDGES, per_choice, side="right") - 1
    r_idx = ctx.resp_base[rk, t_lang] + bucket * N_VARIANTS + rng.integers(0, N_VARIANTS, N)
    body = ctx.resp.take(pa.array(r_idx, mask=failed))
    # long answers restate the request's main slot (problem, topic, task), so
    # responses are as diverse as prompts; capped like the bank texts
    echo = np.isin(rk, ctx.echo_rkinds) & (ctx.bank.t_size[tmpl, 0] > 1) & (per_choice >= 64)
    joined = pc.utf8_slice_codeunits(pc.binary_join_element_wise(lead, body, "\n\n"), 0, ctx.sc.response_max_chars)
    response = pc.if_else(pa.array(echo), joined, body)
    p_len = np.asarray(pc.utf8_length(prompt))
    in_tok = np.ceil(p_len * _TPC[t_lang] + sys_len * 0.27 + c.pos * spec["context_tokens"]).astype(np.int64) + 3
    return status, in_tok, out_tok, r_tok, response


def _infrastructure(c: _Chunk, post: np.ndarray) -> dict:
    """Which of its addresses, user agents and keys each event uses (skewed to an account's first ones;
    rotating proxies evenly), its account and org, and whether it went through the batch API."""
    ctx, P, rng, N, acc = c.ctx, c.P, c.rng, c.N, c.acc

    def pick(off, size, skew=1.0):
        uu = rng.random(N)
        if skew != 1.0:
            uu = uu ** skew
        return off[acc] + (uu * size[acc]).astype(np.int64)

    ip_skew = 1.0 if c.spec["infra"]["ip"]["kind"] == "rotating" else 2.0
    ip_idx = pick(P.ip_off, P.ip_size, ip_skew)
    if P.ip_off2 is not P.ip_off and post.any():
        ip_idx = np.where(post, pick(P.ip_off2, P.ip_size2, ip_skew), ip_idx)
    return {
        "client_ip": ctx.ip.take(pa.array(ip_idx)),
        "user_agent": ctx.ua.take(pa.array(pick(P.ua_off, P.ua_size, 3.0))),
        "api_key_id": ctx.key.take(pa.array(pick(P.key_off, P.key_size, 2.0))),
        "account_id": pa.array(P.ids, pa.string()).take(pa.array(acc)),
        "org_id": pa.array(P.org, pa.string()).take(pa.array(acc)),
        "is_batch": rng.random(N) < c.spec["is_batch"],
    }


def _conversations(c: _Chunk) -> pa.Array:
    """Conversation ids, unique per (population, account, session of the account); splitmix64 is a bijection."""
    if not c.spec["conversation"]:
        return pa.nulls(c.N, pa.string())
    sess_in_acc = c.gs - c.sess_off[np.searchsorted(c.accs, c.acc)]
    key = (np.uint64(c.P.pop.index) << np.uint64(52)) | (c.acc.astype(np.uint64) << np.uint64(16)) | sess_in_acc.astype(np.uint64)
    return pc.binary_join_element_wise("conv_", pa.array(_splitmix64(key ^ np.uint64(c.ctx.seed & 0xFFFF))).cast(pa.string()), "")


_ATTACK_KINDS = [KINDS.index(k) for k in ("cot_harvest", "rubric", "synthesis", "jailbreak", "capsweep", "whale", "lowslow")]


def _end_user_extra(ctx: _Ctx, P: PopAccounts, acc: np.ndarray, t_kind: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Routers pass their end user's id: ``{"end_user": "eu_..."}``; harvest requests
    come from a handful of them."""
    N = len(acc)
    neu = P.end_users[acc]
    if not neu.any():
        return pa.nulls(N, pa.string())
    u = rng.random(N)
    idx = (u * u * neu).astype(np.int64)
    harvest = np.isin(t_kind, _ATTACK_KINDS)
    idx[harvest] = (u[harvest] * 3).astype(np.int64)
    key = (np.uint64(P.pop.index) << np.uint64(52)) | (acc.astype(np.uint64) << np.uint64(20)) | idx.astype(np.uint64)
    eu = pa.array(_splitmix64(key ^ np.uint64((ctx.seed + 1) & 0xFFFF)) >> np.uint64(16)).cast(pa.string())
    txt = pc.binary_join_element_wise('{"end_user":"eu_', eu, '"}', "")
    return pc.if_else(pa.array(neu > 0), txt, pa.nulls(N, pa.string()))


def _finish_chunk(tables: list[pa.Table], rng: np.random.Generator) -> pa.Table:
    """Concatenate per-population parts, sort by time, give random event ids."""
    tbl = pa.concat_tables(tables)
    ts = np.asarray(tbl.column("ts").cast(pa.int64()))
    tbl = tbl.take(pa.array(np.argsort(ts, kind="stable")))
    ids = rng.integers(0, np.iinfo(np.int64).max, len(tbl), dtype=np.int64)
    eid = pc.binary_join_element_wise("evt_", pc.utf8_lpad(pa.array(ids).cast(pa.string()), 19, "0"), "")
    tbl = tbl.set_column(0, EVENT_SCHEMA.field("event_id"), eid)
    return tbl.cast(EVENT_SCHEMA)


def _write_jsonl(fh, tbl: pa.Table, batch: int = 20_000) -> None:
    """Canonical JSON lines: keys sorted, nulls left out, ts as ISO 8601 UTC."""
    import orjson

    names = sorted(tbl.column_names)
    opt = orjson.OPT_SORT_KEYS
    for start in range(0, len(tbl), batch):
        part = tbl.slice(start, batch)
        cols = []
        for nm in names:
            col = part.column(nm)
            if nm == "ts":
                col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ")
            cols.append(col.to_pylist())
        dumps = orjson.dumps
        lines = [dumps({k: v for k, v in zip(names, row) if v is not None}, option=opt) for row in zip(*cols)]
        lines.append(b"")
        fh.write(b"\n".join(lines))


def simulate(scenario="default", scale: float = 1.0, seed: int = 0, out="sim-out", fmt: str = "parquet",
             family: str = "train", progress: bool = False, chunk_events: int = CHUNK_EVENTS) -> dict:
    """Simulate a scenario into ``out``: events, accounts and labels (see docs/simulator.md).

    Returns a summary dict (counts per archetype, files, seconds).
    """
    import time

    if fmt not in ("parquet", "jsonl"):
        raise UsageError(f"--format must be parquet or jsonl, got {fmt!r}")
    if family not in ("train", "holdout"):
        raise UsageError(f"--family must be train or holdout, got {family!r}")
    if not isinstance(seed, int) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    t0 = time.perf_counter()
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, scale)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    bank = Bank(family, seed)
    tables = Tables()
    world = build_world(sc, bank, seed, tables)
    ctx = _Ctx(sc, bank, tables, seed)

    meta = [m for P in world for m in P.meta]
    labels = [lb for P in world for lb in P.labels]
    perm = np.random.default_rng([seed, 5]).permutation(len(meta))  # row order says nothing about archetype
    meta = [meta[i] for i in perm]
    labels = [labels[i] for i in perm]
    meta_cols = {f.name: [m[f.name] for m in meta] for f in ACCOUNT_SCHEMA}
    accounts_tbl = pa.table({k: pa.array(v, ACCOUNT_SCHEMA.field(k).type) for k, v in meta_cols.items()}, schema=ACCOUNT_SCHEMA)
    labels_tbl = pa.table({f.name: pa.array([lb[f.name] for lb in labels], f.type) for f in LABEL_SCHEMA}, schema=LABEL_SCHEMA)
    # provenance in the Parquet key-value metadata (not a column): which family and seed made this data
    prov = {b"distillguard.sim": json.dumps({"scenario": sc.name, "scale": scale, "seed": seed, "family": family},
                                             sort_keys=True).encode()}
    accounts_tbl = accounts_tbl.replace_schema_metadata(prov)
    labels_tbl = labels_tbl.replace_schema_metadata(prov)
    try:
        pq.write_table(accounts_tbl, out / "accounts.parquet", compression="zstd")
        pq.write_table(labels_tbl, out / "labels.parquet", compression="zstd")
    except OSError as exc:
        raise UsageError(f"cannot write into {out}: {exc.strerror or exc}") from None

    planned = int(sum(int(P.n_events.sum()) for P in world))
    ev_path = out / ("events.parquet" if fmt == "parquet" else "events.jsonl")
    other = out / ("events.jsonl" if fmt == "parquet" else "events.parquet")
    if other.exists():
        other.unlink()
    # Every chunk holds a random slice of the accounts of every population over
    # the whole window, so file position says nothing about the archetype.
    n_chunks = max(1, -(-planned // max(1, chunk_events)))
    groups = [np.random.default_rng([seed, 3, P.pop.index]).integers(0, n_chunks, len(P.ids)) for P in world]
    per_arch: dict[str, int] = {}
    n_written = 0
    bar = _progress(progress, planned)
    try:
        writer = pq.ParquetWriter(ev_path, EVENT_SCHEMA.with_metadata(prov), compression="zstd") if fmt == "parquet" else None
        fh = open(ev_path, "wb") if fmt == "jsonl" else None
    except OSError as exc:
        raise UsageError(f"cannot write {ev_path}: {exc.strerror or exc}") from None
    try:
        for k in range(n_chunks):
            parts = []
            for P, g in zip(world, groups):
                accs = np.flatnonzero(g == k)
                if not len(accs):
                    continue
                tbl = _gen_chunk(ctx, P, accs, np.random.default_rng([seed, 2, k, P.pop.index]))
                if bar:
                    bar[0].update(bar[1], advance=int(P.n_events[accs].sum()))
                if tbl is None:
                    continue
                parts.append(tbl)
                per_arch[P.pop.archetype] = per_arch.get(P.pop.archetype, 0) + len(tbl)
            if not parts:
                continue
            tbl = _finish_chunk(parts, np.random.default_rng([seed, 4, k]))
            if writer is not None:
                writer.write_table(tbl)
            else:
                _write_jsonl(fh, tbl)
            n_written += len(tbl)
            del parts, tbl
    finally:
        if writer is not None:
            writer.close()
        if fh is not None:
            fh.close()
        if bar:
            bar[0].stop()
    secs = time.perf_counter() - t0
    n_campaigns = len({lb["campaign_id"] for lb in labels if lb["campaign_id"]})
    summary = {
        "scenario": sc.name, "scale": scale, "seed": seed, "family": family, "format": fmt,
        "window": {"start": sc.start.isoformat().replace("+00:00", "Z"), "days": sc.days},
        "events": n_written, "accounts": len(labels),
        "attack_accounts": sum(1 for lb in labels if lb["is_attack"]), "campaigns": n_campaigns,
        "operators": len({lb["operator_id"] for lb in labels if lb["operator_id"]}),
        "events_per_archetype": per_arch,
        "accounts_per_archetype": _count(lb["archetype"] for lb in labels),
        "files": [str(ev_path), str(out / "accounts.parquet"), str(out / "labels.parquet")],
        "seconds": round(secs, 2), "events_per_second": round(n_written / secs) if secs > 0 else None,
    }
    return summary


def _count(xs) -> dict:
    d: dict = {}
    for x in xs:
        d[x] = d.get(x, 0) + 1
    return d


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    p = Progress(TextColumn("simulate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 console=Console(stderr=True), transient=False)
    p.start()
    task = p.add_task("events", total=total)
    return p, task


def dump_summary(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=True)

