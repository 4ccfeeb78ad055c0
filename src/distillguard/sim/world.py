"""Accounts, campaigns and infrastructure of a simulated world.

Everything per account is built here (once, small); per-event work happens in
:mod:`distillguard.sim.engine` on arrays indexed by the account position.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from distillguard.sim.bank import Bank
from distillguard.sim.grammar_data import KINDS, LANGS
from distillguard.sim.scenario import MAX_SHARED_NETS, Population, Scenario

COUNTRY_TZ = {"US": -6.0, "CA": -5.0, "MX": -6.0, "BR": -3.0, "AR": -3.0, "CO": -5.0, "GB": 0.0, "DE": 1.0, "FR": 1.0,
              "ES": 1.0, "RU": 3.0, "KZ": 5.0, "IN": 5.5, "CN": 8.0, "SG": 8.0, "JP": 9.0, "KR": 9.0, "AU": 10.0, "TW": 8.0}
COUNTRY_LANG = {"CN": "zh", "TW": "zh", "RU": "ru", "KZ": "ru", "ES": "es", "MX": "es", "AR": "es", "CO": "es"}
CONSUMER_EMAIL = {
    "en": (["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "hotmail.com"], [0.5, 0.2, 0.1, 0.1, 0.05, 0.05]),
    "zh": (["qq.com", "163.com", "gmail.com", "126.com"], [0.45, 0.3, 0.15, 0.1]),
    "ru": (["yandex.ru", "mail.ru", "gmail.com", "rambler.ru"], [0.4, 0.35, 0.2, 0.05]),
    "es": (["gmail.com", "hotmail.es", "outlook.es", "yahoo.es"], [0.55, 0.2, 0.15, 0.1]),
}
WORDS = ["blue", "north", "data", "peak", "river", "nova", "bright", "stone", "cloud", "pixel", "green", "lumen", "vertex", "harbor",
         "atlas", "cedar", "delta", "ember", "fjord", "garnet", "helix", "iris", "juniper", "kite", "lotus", "maple", "onyx", "quartz"]
TLDS = ["com", "io", "co", "net", "ai", "de", "com.br", "co.uk", "cn", "ru", "es"]
CAMPAIGN_TLDS = ["top", "xyz", "site", "online", "icu", "shop", "info"]
RESIDENTIAL_A = [24, 67, 71, 73, 76, 98, 99, 108, 174, 184, 186, 187, 189, 201, 2, 5, 31, 37, 46, 77, 78, 79, 80, 81, 82, 83,
                 84, 85, 86, 88, 89, 90, 91, 92, 93, 94, 95, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121,
                 122, 123, 124, 125, 175, 176, 177, 178, 179, 180, 181, 182, 183, 188, 190, 191, 200]
CLOUD_A = [3, 13, 18, 20, 34, 35, 40, 52, 54, 104, 137, 138, 146, 157, 159, 161, 165, 167]
SDK_UA = ["openai-python/1.{a}.{b}", "OpenAI/NodeJS/4.{a}.{b}", "python-httpx/0.2{c}.{b}", "langchain/0.{c}.{b}",
          "litellm/1.4{c}.{b}", "Go-http-client/1.1", "okhttp/4.12.{c}", "axios/1.{c}.{b}", "node-fetch/3.{c}.{b}",
          "ruby-openai/7.{c}.{b}", "Java-http-client/21.0.{c}"]
IDE_UA = ["CodePilot-VSCode/1.{a}.{b}", "AgentCLI/0.{a}.{b} (node 20)", "JetBrainsAssistant/2025.{c}.{b}", "nvim-llm/0.{c}.{b}",
          "ZedAssistant/0.1{a}.{b}", "Continue/0.9.{a}"]
BROWSER_UA = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/1{a}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{c} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:12{c}.0) Gecko/20100101 Firefox/12{c}.0",
    "ChatApp/3.{a} (iPhone; iOS 17.{c}; Scale/3.00)",
    "ChatApp/3.{a} (Android 14; Pixel {c})",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{c} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
]
SCRIPT_UA = ["python-requests/2.31.0", "python-requests/2.32.3", "aiohttp/3.9.5", "openai-python/1.35.3", "httpx/0.27.0",
             "curl/8.5.0", "OpenAI/NodeJS/4.52.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"]
CGNAT_SHARE = 0.12
CGNAT_POOL = 400
PARAMS = ("temperature", "top_p", "max_output_tokens", "n", "logprobs", "top_logprobs", "reasoning_effort")


@dataclass
class Campaign:
    cid: str
    waves: np.ndarray          # wave start times (s from window start)
    wave_len: float
    offset: float              # lockstep: campaign-wide offset inside a wave
    pivot_delay_s: float
    pivot_share: float
    oid: str = ""              # the operator running it (several campaigns may share one)
    pools: dict = field(default_factory=dict)  # (kind, lang) -> template ids
    pools2: dict = field(default_factory=dict)  # after adapting (adapt.new_templates)


@dataclass
class PopAccounts:
    """Per-account arrays of one population (index = account position)."""

    pop: Population
    ids: list[str]
    n_events: np.ndarray
    tz: np.ndarray
    lang: np.ndarray
    active_from: np.ndarray     # seconds from window start
    camp: np.ndarray            # campaign index within the population, -1 benign
    campaigns: list[Campaign]
    ip_off: np.ndarray
    ip_size: np.ndarray
    ua_off: np.ndarray
    ua_size: np.ndarray
    key_off: np.ndarray
    key_size: np.ndarray
    sys_off: np.ndarray
    sys_size: np.ndarray        # 0 = never a system prompt
    org: list[str]
    kinds: list[str]            # prompt kinds of the population, in pool order
    kind_cum: np.ndarray        # cumulative weights over kinds
    pool: np.ndarray            # (n, n_kinds, kmax) template ids
    pool_size: np.ndarray       # (n, n_kinds)
    sticky: dict                # param -> (n,) value index
    adopter: np.ndarray         # bool: adopts a new model
    model_cum: np.ndarray
    model_names: list[str]
    phase: np.ndarray           # per-account phase for sweeps / wave offsets
    end_users: np.ndarray       # end users behind the account (0 = not a router)
    adapt_s: float              # when the operator changes tactics (inf: never)
    pool2: np.ndarray | None    # templates after adapting
    ip_off2: np.ndarray         # proxies after adapting
    ip_size2: np.ndarray
    meta: list[dict]            # account metadata rows
    labels: list[dict]


class Tables:
    """Global string tables (IPs, user agents, keys, system prompts)."""

    def __init__(self):
        self.ip: list[str] = []
        self.ua: list[str] = []
        self.key: list[str] = []
        self.sys: list[str] = []
        self.cgnat: list[str] = []  # mobile-carrier NAT addresses shared by unrelated users
        self._cloud_nets: list[tuple[int, int, int]] = []

    def cloud_nets(self, seed: int) -> list[tuple[int, int, int]]:
        """The world's popular cloud /24 ranges (seeded by the world, shared by every population)."""
        if not self._cloud_nets:
            cr = random.Random(seed * 17 + 5)
            self._cloud_nets = [(cr.choice(CLOUD_A), cr.randrange(256), cr.randrange(256)) for _ in range(MAX_SHARED_NETS)]
        return self._cloud_nets

    def add_ips(self, ips: list[str]) -> tuple[int, int]:
        off = len(self.ip)
        self.ip.extend(ips)
        return off, len(ips)

    def add_uas(self, uas: list[str]) -> tuple[int, int]:
        off = len(self.ua)
        self.ua.extend(uas)
        return off, len(uas)

    def add_sys(self, texts: list[str]) -> tuple[int, int]:
        off = len(self.sys)
        self.sys.extend(texts)
        return off, len(texts)


def _hex(r: random.Random, n: int) -> str:
    return "%0*x" % (n, r.getrandbits(4 * n))


def _pick(r: random.Random, weights: dict):
    keys = list(weights)
    return r.choices(keys, weights=[float(weights[k]) for k in keys])[0]


def _rng_range(r: random.Random, lohi) -> int:
    lo, hi = int(lohi[0]), int(lohi[1])
    return r.randint(lo, max(lo, hi))


def _groups(r: random.Random, n: int, size) -> list[int]:
    """Group index per account: consecutive groups with sizes in ``size``."""
    out, g = [], 0
    while len(out) < n:
        k = _rng_range(r, size)
        out.extend([g] * k)
        g += 1
    return out[:n]


def _ip_in(r: random.Random, a: int, b: int | None = None, c: int | None = None) -> str:
    b = r.randrange(256) if b is None else b
    c = r.randrange(256) if c is None else c
    return f"{a}.{b}.{c}.{r.randrange(1, 255)}"


def _ua(r: random.Random, frames: list[str]) -> str:
    if frames is SDK_UA and r.random() < 0.25:  # plain scripts are common among benign API users too
        return r.choice(SCRIPT_UA)
    return r.choice(frames).format(a=r.randint(10, 39), b=r.randint(0, 19), c=r.randint(1, 9))


def build_world(sc: Scenario, bank: Bank, seed: int, tables: Tables) -> list[PopAccounts]:
    out = []
    used_ids: set[str] = set()
    counters = [0, 0]  # campaigns, operators numbered so far
    for pop in sc.populations:
        out.append(_build_pop(sc, pop, bank, seed, tables, used_ids, counters))
    return out


def _operator_leaders(pop: Population) -> list[int]:
    """Per campaign, the first campaign of its operator (itself when each campaign has its own)."""
    k, ops = pop.campaigns, pop.operators or pop.campaigns
    op_of = [ci * ops // k for ci in range(k)]
    return [op_of.index(op_of[ci]) for ci in range(k)]


@dataclass
class _Draw:
    """One population being built: its spec, its two random streams and what earlier steps decided.

    Each step below draws from ``r`` / ``rng`` in a fixed order; the steps run in :func:`_build_pop`'s
    order, so the same seed gives the same world byte for byte."""

    sc: Scenario
    pop: Population
    bank: Bank
    seed: int
    tables: Tables
    r: random.Random
    rng: np.random.Generator
    s: dict = field(init=False)
    inf: dict = field(init=False)
    n: int = field(init=False)
    lang: list[str] = field(default_factory=list)
    campaigns: list[Campaign] = field(default_factory=list)
    camp: np.ndarray | None = None
    lead: list[int] = field(default_factory=list)
    org: list[str] = field(default_factory=list)
    org_group: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.s, self.n = self.pop.spec, self.pop.accounts
        self.inf = self.s["infra"]


def _build_pop(sc: Scenario, pop: Population, bank: Bank, seed: int, tables: Tables, used_ids: set, counters: list) -> PopAccounts:
    """Every per-account array of one population: identity, geography, then (for campaign archetypes) the
    campaigns and operators, then each piece of infrastructure as the archetype's ``infra`` spec says."""
    d = _Draw(sc, pop, bank, seed, tables, r=random.Random(seed * 1_000_003 + pop.index * 7_919 + 11),
              rng=np.random.default_rng([seed, 1, pop.index]))
    s, n, r, rng = d.s, d.n, d.r, d.rng
    ids = _account_ids(r, n, used_ids)
    vol = _volumes(rng, s["volume"], n)
    countries, tz = _countries(d)
    d.lang = _languages(d, countries)
    lang_arr = np.array([LANGS.index(x) for x in d.lang], dtype=np.int8)
    d.camp = np.full(n, -1, dtype=np.int64)
    benign_schedule = None
    if s["attack"] and n:
        d.campaigns, d.camp = _campaigns(d, counters)
    if not d.campaigns:
        benign_schedule = _benign_schedule(d)
    d.org = _orgs(d)
    d.org_group = {o: i for i, o in enumerate(dict.fromkeys(d.org))}
    created = _signups(d)
    active_from = np.maximum(0.0, created + rng.exponential(1800.0, n))
    email = _emails(d)
    pay = _payments(d)
    ip_off, ip_size = _IP_BUILDERS.get(_ip_kind(d), _ips_per_account)(d)
    ip_off2, ip_size2 = _adapted_proxies(d, ip_off, ip_size)
    ua_off, ua_size = _user_agents(d)
    key_off, key_size = _api_keys(d)
    sys_off, sys_size = _system_prompts(d)
    kinds, kind_cum, pool, pool_size, pool2 = _template_pools(d)
    sticky = _sticky_params(d)
    models = s["models"] or sc.base_models
    model_names = list(models)
    mw = np.array([float(models[m]) for m in model_names])
    adopter = rng.random(n) < s["adoption"]["fraction"]
    meta, labels = _meta_and_labels(d, ids, created, email, pay, countries)
    campaigns = d.campaigns
    pa_ = PopAccounts(
        pop=pop, ids=ids, n_events=vol, tz=tz, lang=lang_arr, active_from=active_from, camp=d.camp,
        campaigns=campaigns or [benign_schedule], ip_off=ip_off, ip_size=ip_size, ua_off=ua_off, ua_size=ua_size,
        key_off=key_off, key_size=key_size, sys_off=sys_off, sys_size=sys_size, org=d.org, kinds=kinds,
        kind_cum=kind_cum, pool=pool, pool_size=pool_size, sticky=sticky, adopter=adopter,
        model_cum=np.cumsum(mw / mw.sum()), model_names=model_names, phase=rng.random(n), meta=meta, labels=labels,
        adapt_s=(float(s["adapt"]["at_day"]) * 86400.0 if (campaigns and s["adapt"]) else float("inf")),
        pool2=pool2, ip_off2=ip_off2, ip_size2=ip_size2,
        end_users=(rng.integers(s["end_users"][0], s["end_users"][1] + 1, n) if s["end_users"] else np.zeros(n, dtype=np.int64)),
    )
    if not campaigns:
        pa_.camp = np.zeros(n, dtype=np.int64)  # benign: one shared schedule
    return pa_


# --- identity, volume, geography, language


def _account_ids(r: random.Random, n: int, used_ids: set) -> list[str]:
    ids = []
    for _ in range(n):
        while True:
            a = "acct_" + _hex(r, 12)
            if a not in used_ids:
                used_ids.add(a)
                ids.append(a)
                break
    return ids


def _volumes(rng: np.random.Generator, v: dict, n: int) -> np.ndarray:
    """Events per account: log-normal, clipped, with a share of near-idle accounts."""
    vol = np.exp(rng.normal(np.log(v["median"]), v["sigma"], n))
    vol = np.clip(np.round(vol), v["min"], v["max"]).astype(np.int64)
    low = rng.random(n) < v["low_frac"]
    vol[low] = rng.integers(1, 4, int(low.sum()))
    return vol


def _countries(d: _Draw) -> tuple[list[str], np.ndarray]:
    countries = [_pick(d.r, d.s["countries"]) for _ in range(d.n)]
    tz = np.array([COUNTRY_TZ.get(c, 0.0) for c in countries]) + d.rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0], d.n)
    return countries, tz


def _languages(d: _Draw, countries: list[str]) -> list[str]:
    r, langs_w = d.r, d.s["languages"]
    lang = []
    for c in countries:
        if d.s["language_from_country"]:
            if c in COUNTRY_LANG:
                lang.append(COUNTRY_LANG[c] if r.random() < 0.85 else "en")
            else:
                lang.append("en" if r.random() < 0.85 else _pick(r, langs_w))
        else:
            lang.append(_pick(r, langs_w))
    return lang


# --- campaigns and operators (campaign archetypes)


def _campaigns(d: _Draw, counters: list) -> tuple[list[Campaign], np.ndarray]:
    """The population's campaigns, each account assigned to one; campaigns of one operator share its
    evidence (schedule, templates) but not its cards or proxies."""
    k, n = d.pop.campaigns, d.n
    share = d.rng.dirichlet(np.full(k, 3.0))
    camp = np.sort(np.r_[np.arange(k), d.rng.choice(k, size=n - k, p=share)])  # every operator has an account
    campaigns = []
    for _ in range(k):
        counters[0] += 1
        campaigns.append(_new_campaign(d, f"camp-{counters[0]:03d}"))
    d.lead = _operator_leaders(d.pop)
    for ci, c in enumerate(campaigns):
        if d.lead[ci] == ci:
            counters[1] += 1
            c.oid = f"op-{counters[1]:03d}"
        else:
            src = campaigns[d.lead[ci]]
            c.oid, c.waves, c.offset, c.pools, c.pools2 = src.oid, src.waves, src.offset, src.pools, src.pools2
            c.pivot_delay_s, c.pivot_share = src.pivot_delay_s, src.pivot_share
    return campaigns, camp


def _new_campaign(d: _Draw, cid: str) -> Campaign:
    """One campaign's wave schedule, model-pivot behaviour and template pools."""
    r, s, W = d.r, d.s, d.sc.window_s
    t = s["timing"]
    every = t["wave_every_h"] * 3600.0
    starts, x = [], r.uniform(0, every)
    while x < W:
        starts.append(x)
        x += every * r.uniform(0.8, 1.2)
    piv = s["pivot"] or {"delay_h": [0, 0], "share": [0, 0]}
    c = Campaign(
        cid=cid,
        waves=np.array(starts or [0.0]),
        wave_len=t["wave_len_h"] * 3600.0,
        offset=r.uniform(0, max(1.0, t["wave_len_h"] * 3600.0 * 0.3)),
        pivot_delay_s=r.uniform(*piv["delay_h"]) * 3600.0,
        pivot_share=r.uniform(*piv["share"]) if s["pivot"] else -1.0,
    )
    for kind in s["prompts"]:
        for lg in LANGS:
            ids_kl = d.bank.by_kl[(kind, lg)]
            m = min(len(ids_kl), _rng_range(r, s["campaign_pool"]))
            c.pools[(kind, lg)] = np.array(r.sample(list(ids_kl), m), dtype=np.int32)
            if s["adapt"] and s["adapt"].get("new_templates"):
                fresh = [x for x in ids_kl if x not in set(c.pools[(kind, lg)])] or list(ids_kl)
                c.pools2[(kind, lg)] = np.array(r.sample(fresh, min(len(fresh), m)), dtype=np.int32)
    return c


def _benign_schedule(d: _Draw) -> Campaign:
    """Benign populations share one regular schedule (batch jobs, classes), carried as a campaign slot."""
    t = d.s["timing"]
    every = t["wave_every_h"] * 3600.0
    starts = list(np.arange(d.r.uniform(0, every), d.sc.window_s, every)) or [0.0]
    return Campaign("", np.array(starts), t["wave_len_h"] * 3600.0, 0.0, 0.0, -1.0)


# --- organisations and sign-ups


def _orgs(d: _Draw) -> list[str]:
    r, n, spec = d.r, d.n, d.inf["org"]
    if spec["kind"] == "shared":
        g = _groups(r, n, spec["size"])
        org_names = {gi: "org_" + _hex(r, 10) for gi in set(g)}
        return [org_names[x] for x in g]
    if spec["kind"] == "campaign" and d.campaigns:
        corg = ["org_" + _hex(r, 10) for _ in d.campaigns]
        return [corg[d.camp[i]] if r.random() < 0.9 else "org_" + _hex(r, 10) for i in range(n)]
    return ["org_" + _hex(r, 10) for _ in range(n)]


def _signups(d: _Draw) -> np.ndarray:
    """Sign-up times (seconds relative to window start; negative = before)."""
    r, rng, n, su, campaigns = d.r, d.rng, d.n, d.inf["signup"], d.campaigns
    if su["kind"] != "bursts":
        lo, hi = su["days_before"]
        return -np.exp(rng.uniform(np.log(max(lo, 0.01)), np.log(max(hi, lo + 0.01)), n)) * 86400.0
    created = np.zeros(n)
    groups = campaigns if campaigns else [None]
    for gi in range(len(groups)):
        members = np.flatnonzero(d.camp == gi) if campaigns else np.arange(n)
        if not len(members):
            continue
        by_org = not campaigns and d.inf["org"]["kind"] == "shared"  # e.g. a class signs up together
        nb = len(d.org_group) if by_org else _rng_range(r, su["bursts"])
        lo, hi = su["days_before"]
        bt = []
        for _ in range(nb):
            if r.random() < su["in_window_frac"]:
                bt.append(r.uniform(0, 0.6 * d.sc.window_s))
            else:
                bt.append(-r.uniform(lo, hi) * 86400.0)
        bt = np.array(bt)
        if by_org:
            pick = np.array([d.org_group[d.org[i]] for i in members], dtype=np.int64)
        else:
            pick = rng.integers(0, nb, len(members))
        dur = su["burst_len_h"] * 3600.0
        created[members] = bt[pick] + np.minimum(rng.exponential(dur / 3, len(members)), dur)
    # imperfect: some accounts were bought/aged, not created in a burst
    aged = rng.random(n) < (0.1 if campaigns else 0.0)
    created[aged] = -np.exp(rng.uniform(np.log(30), np.log(700), int(aged.sum()))) * 86400.0
    return created


# --- e-mail domains, one builder per ``infra.email.kind``


def _odd_domain(r: random.Random) -> str:
    return f"{r.choice(WORDS)}{r.choice(['mail', 'box', 'inbox', 'post'])}{r.randint(1, 99)}.{r.choice(CAMPAIGN_TLDS)}"


def _consumer_domain(r: random.Random, lg: str) -> str:
    if r.random() < 0.03:  # small or odd providers exist in benign traffic too
        return _odd_domain(r)
    doms, w = CONSUMER_EMAIL[lg]
    return r.choices(doms, weights=w)[0]


def _corporate_domain(r: random.Random, org_domain: dict, o: str) -> str:
    if o not in org_domain:
        org_domain[o] = f"{r.choice(WORDS)}{r.choice(WORDS)}.{r.choice(TLDS)}"
    return org_domain[o]


def _email_consumer(d: _Draw, i: int, org_domain: dict, camp_domains: list) -> str:
    return _consumer_domain(d.r, d.lang[i])


def _email_corporate(d: _Draw, i: int, org_domain: dict, camp_domains: list) -> str:
    return _corporate_domain(d.r, org_domain, d.org[i]) if d.r.random() < 0.9 else _consumer_domain(d.r, d.lang[i])


def _email_edu(d: _Draw, i: int, org_domain: dict, camp_domains: list) -> str:
    r, o = d.r, d.org[i]
    if o not in org_domain:
        org_domain[o] = f"{r.choice(WORDS)}{r.choice(['-u', 'state', 'tech', 'college'])}.edu"
    return org_domain[o] if r.random() < 0.9 else _consumer_domain(r, d.lang[i])


def _email_edu_or_corp(d: _Draw, i: int, org_domain: dict, camp_domains: list) -> str:
    r = d.r
    return f"{r.choice(WORDS)}{r.choice(['', '-u', 'tech'])}.edu" if r.random() < 0.5 else _corporate_domain(r, org_domain, d.org[i])


def _email_campaign(d: _Draw, i: int, org_domain: dict, camp_domains: list) -> str:
    r = d.r
    x = r.random()
    if d.campaigns and x < 0.45:
        return r.choice(camp_domains[d.camp[i]])
    if x < 0.92:
        return _consumer_domain(r, d.lang[i])
    return f"{r.choice(WORDS)}{r.choice(WORDS)}.{r.choice(TLDS)}"


_EMAIL_BUILDERS = {"consumer": _email_consumer, "corporate": _email_corporate, "edu": _email_edu,
                   "edu_or_corp": _email_edu_or_corp, "campaign": _email_campaign}


def _emails(d: _Draw) -> list[str]:
    r = d.r
    camp_domains = [[_odd_domain(r) for _ in range(r.randint(2, 4))] for _ in d.campaigns]
    camp_domains = [camp_domains[d.lead[ci]] for ci in range(len(d.campaigns))]
    one = _EMAIL_BUILDERS.get(d.inf["email"]["kind"], _email_campaign)
    org_domain: dict[str, str] = {}
    return [one(d, i, org_domain, camp_domains) for i in range(d.n)]


def _payments(d: _Draw) -> list[str | None]:
    r, pk = d.r, d.inf["payment"]
    cards_of_camp = [["pm_" + _hex(r, 16) for _ in range(_rng_range(r, pk["cards"]))] for _ in d.campaigns]
    org_card = {o: "pm_" + _hex(r, 16) for o in d.org_group}
    pay: list[str | None] = []
    for i in range(d.n):
        if pk["kind"] == "none" or r.random() < pk["none_frac"]:
            pay.append(None)
        elif pk["kind"] == "org":
            pay.append(org_card[d.org[i]])
        elif pk["kind"] == "shared" and d.campaigns and r.random() < pk["shared_frac"]:
            cards = cards_of_camp[d.camp[i]]
            w = [1.0 / (j + 1) for j in range(len(cards))]
            pay.append(r.choices(cards, weights=w)[0])
        else:
            pay.append("pm_" + _hex(r, 16))
    return pay


# --- client IPs, one builder per ``infra.ip.kind`` (the rest: addresses of each account's own)


def _ip_kind(d: _Draw) -> str:
    kind = d.inf["ip"]["kind"]
    return "own" if kind == "rotating" and not d.campaigns else kind  # rotating proxies need a campaign


def _ips_grouped(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    """NAT / corporate egress: accounts of one group (or org) share one or two addresses."""
    r, n, ipk = d.r, d.n, d.inf["ip"]
    ip_off, ip_size = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    g = _groups(r, n, ipk["group"]) if ipk["kind"] == "nat" else [d.org_group[o] for o in d.org]
    gl: dict[int, tuple[int, int]] = {}
    for i in range(n):
        if g[i] not in gl:
            a = r.choice(CLOUD_A + RESIDENTIAL_A)
            b, c = r.randrange(256), r.randrange(256)
            gl[g[i]] = d.tables.add_ips([_ip_in(r, a, b, c) for _ in range(r.randint(1, 2))])
        ip_off[i], ip_size[i] = gl[g[i]]
    return ip_off, ip_size


def _ips_cloud_shared(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    """Apps on cloud hosting: groups share a /24 (the world's popular ranges when ``shared_nets``)."""
    r, n, ipk = d.r, d.n, d.inf["ip"]
    ip_off, ip_size = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    g = _groups(r, n, ipk["group"])
    if ipk["shared_nets"]:  # the same few cloud egress ranges serve apps of every kind in this world
        world_nets = d.tables.cloud_nets(d.seed)[: int(ipk["shared_nets"])]
        nets = {gi: r.choice(world_nets) for gi in set(g)}
    else:
        nets = {gi: (r.choice(CLOUD_A), r.randrange(256), r.randrange(256)) for gi in set(g)}
    for i in range(n):
        a, b, c = nets[g[i]]
        ip_off[i], ip_size[i] = d.tables.add_ips([_ip_in(r, a, b, c) for _ in range(_rng_range(r, ipk["per_account"]))])
    return ip_off, ip_size


def _proxy_pool(d: _Draw) -> tuple[int, int]:
    """One campaign's residential proxy pool, spread over a few dozen subnets."""
    r = d.r
    size = _rng_range(r, d.inf["ip"]["pool"])
    subnets = [(r.choice(RESIDENTIAL_A), r.randrange(256)) for _ in range(max(10, size // 40))]
    return d.tables.add_ips([_ip_in(r, *r.choice(subnets)) for _ in range(size)])


def _ips_rotating(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    """Campaign accounts draw a window of their campaign's proxy pool."""
    r, n, ipk = d.r, d.n, d.inf["ip"]
    ip_off, ip_size = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for ci in range(len(d.campaigns)):
        members = np.flatnonzero(d.camp == ci)
        off, size = _proxy_pool(d)
        for i in members:
            k = min(size, _rng_range(r, ipk["per_account"]))
            if r.random() < 0.08:  # imperfect: some accounts use their own home connection
                ip_off[i], ip_size[i] = d.tables.add_ips([_ip_in(r, r.choice(RESIDENTIAL_A)) for _ in range(r.randint(1, 2))])
            else:
                ip_off[i], ip_size[i] = off + r.randrange(0, size - k + 1), k
    return ip_off, ip_size


def _ips_per_account(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    """Addresses of each account's own: cloud hosts, unique residential, or home (sometimes behind CGNAT)."""
    r, n, ipk, tables = d.r, d.n, d.inf["ip"], d.tables
    kind = ipk["kind"]
    ip_off, ip_size = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for i in range(n):
        if kind == "cloud" or kind == "rotating":
            a, b, c = r.choice(CLOUD_A), r.randrange(256), r.randrange(256)
            ips = [_ip_in(r, a, b, c) for _ in range(_rng_range(r, ipk["per_account"]))]
        elif kind == "unique_residential":
            ips = [_ip_in(r, r.choice(RESIDENTIAL_A))]
        else:  # home; some people also appear behind their mobile carrier's shared NAT
            a, b = r.choice(RESIDENTIAL_A), r.randrange(256)
            ips = [_ip_in(r, a, b) for _ in range(_rng_range(r, ipk["per_account"]))]
            if r.random() < CGNAT_SHARE:
                if not tables.cgnat:
                    cr = random.Random(d.seed * 13 + 7)
                    nets = [(cr.choice(RESIDENTIAL_A), cr.randrange(256), cr.randrange(256)) for _ in range(12)]
                    tables.cgnat = [_ip_in(cr, *cr.choice(nets)) for _ in range(CGNAT_POOL)]
                ips.insert(0, r.choice(tables.cgnat))
        ip_off[i], ip_size[i] = tables.add_ips(ips)
    return ip_off, ip_size


_IP_BUILDERS = {"nat": _ips_grouped, "corporate": _ips_grouped, "cloud_shared": _ips_cloud_shared, "rotating": _ips_rotating}


def _adapted_proxies(d: _Draw, ip_off: np.ndarray, ip_size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fresh proxy pools the campaign switches to when it adapts (``adapt.new_proxies``)."""
    s, r = d.s, d.r
    if not (d.campaigns and s["adapt"] and s["adapt"].get("new_proxies") and d.inf["ip"]["kind"] == "rotating"):
        return ip_off, ip_size
    ip_off2, ip_size2 = ip_off.copy(), ip_size.copy()
    for ci in range(len(d.campaigns)):
        members = np.flatnonzero(d.camp == ci)
        off, size = _proxy_pool(d)
        for i in members:
            k = min(size, _rng_range(r, d.inf["ip"]["per_account"]))
            ip_off2[i], ip_size2[i] = off + r.randrange(0, size - k + 1), k
    return ip_off2, ip_size2


# --- user agents, keys, system prompts


def _user_agents(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    r, n, uak, tables, campaigns = d.r, d.n, d.inf["ua"], d.tables, d.campaigns
    ua_off, ua_size = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    camp_ua = [tables.add_uas(r.sample(SCRIPT_UA, r.randint(1, 3))) for _ in campaigns]
    camp_ua = [camp_ua[d.lead[ci]] for ci in range(len(campaigns))]
    frames = {"browser": BROWSER_UA, "sdk": SDK_UA, "ide": IDE_UA, "campaign": SDK_UA + SCRIPT_UA}
    for i in range(n):
        if uak["kind"] == "campaign" and campaigns and r.random() < uak["shared_frac"]:
            ua_off[i], ua_size[i] = camp_ua[d.camp[i]]
        elif uak["kind"] == "unique_browser":
            ua_off[i], ua_size[i] = tables.add_uas([
                r.choice(BROWSER_UA[:3]).replace(".0.0.0", f".0.{r.randint(4000, 6999)}.{r.randint(10, 250)}")
                .replace("17.{c}", f"17.{r.randint(0, 6)}.{r.randint(1, 9)}").format(a=r.randint(18, 31), c=r.randint(1, 9))])
        else:
            ua_off[i], ua_size[i] = tables.add_uas([_ua(r, frames[uak["kind"]]) for _ in range(_rng_range(r, uak["per_account"]))])
    return ua_off, ua_size


def _api_keys(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    key_off, key_size = np.zeros(d.n, dtype=np.int64), np.zeros(d.n, dtype=np.int64)
    for i in range(d.n):
        k = _rng_range(d.r, d.s["keys_per_account"])
        key_off[i], key_size[i] = len(d.tables.key), k
        d.tables.key.extend("key_" + _hex(d.r, 20) for _ in range(k))
    return key_off, key_size


def _system_prompts(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    r, n, campaigns, sp = d.r, d.n, d.campaigns, d.s["system_prompt"]
    sp_kinds = sp["kind"] if isinstance(sp["kind"], list) else [sp["kind"]]
    sys_off, sys_size = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    # products / operators: a few exact system prompts shared by many accounts
    shared_sys = [d.tables.add_sys([d.bank.system_prompt(r.choice(sp_kinds), r) for _ in range(r.randint(1, 2))])
                  for _ in range(len(campaigns) if campaigns else 8)]
    if campaigns:
        shared_sys = [shared_sys[d.lead[ci]] for ci in range(len(campaigns))]
    for i in range(n):
        if r.random() < sp["prob"]:
            if r.random() < (0.8 if campaigns else 0.6):
                sys_off[i], sys_size[i] = shared_sys[d.camp[i] if campaigns else r.randrange(len(shared_sys))]
            else:
                sys_off[i], sys_size[i] = d.tables.add_sys([d.bank.system_prompt(r.choice(sp_kinds), r) for _ in range(r.randint(1, 2))])
    return sys_off, sys_size


# --- prompt templates and sticky request parameters


def _template_pools(d: _Draw):
    """Per account and prompt kind, the templates it draws from (campaign accounts mostly from their
    campaign's pool; after adapting, from its fresh pool)."""
    r, rng, s, n, campaigns = d.r, d.rng, d.s, d.n, d.campaigns
    kinds = list(s["prompts"])
    w = np.array([float(s["prompts"][k]) for k in kinds])
    kind_cum = np.cumsum(w / w.sum())
    kmax = max(int(s["template_pool"][1]), 1)
    pool = np.zeros((n, len(kinds), kmax), dtype=np.int32)
    pool_size = np.ones((n, len(kinds)), dtype=np.int64)
    second = s["second_language"]
    adapt = s["adapt"] if campaigns else None
    pool2 = np.zeros_like(pool) if (adapt and adapt.get("new_templates")) else None
    for i in range(n):
        for j, kd in enumerate(kinds):
            k = _rng_range(r, s["template_pool"])
            chosen = []
            for _ in range(k):
                lg = d.lang[i] if r.random() >= second else ("en" if d.lang[i] != "en" else _pick(r, s["languages"]))
                if campaigns and r.random() > 0.05:
                    src = campaigns[d.camp[i]].pools[(kd, lg)]
                else:
                    src = d.bank.by_kl[(kd, lg)]
                if kd == "chat_popular":  # popular prompts are shared by many users
                    wts = 1.0 / (np.arange(len(src)) + 1.0) ** 1.2
                    chosen.append(int(src[int(rng.choice(len(src), p=wts / wts.sum()))]))
                else:
                    chosen.append(int(src[r.randrange(len(src))]))
            pool[i, j, :k] = chosen
            pool_size[i, j] = k
            if pool2 is not None:
                src2 = campaigns[d.camp[i]].pools2[(kd, d.lang[i])]
                pool2[i, j, :k] = [int(src2[r.randrange(len(src2))]) for _ in range(k)]
    return kinds, kind_cum, pool, pool_size, pool2


def _sticky_params(d: _Draw) -> dict:
    """Per account, the value index it keeps for each request parameter."""
    sticky = {}
    for p in PARAMS:
        pw = np.array(d.s["params"][p]["p"], dtype=float)
        sticky[p] = d.rng.choice(len(pw), size=d.n, p=pw / pw.sum())
    return sticky


def _meta_and_labels(d: _Draw, ids, created, email, pay, countries) -> tuple[list[dict], list[dict]]:
    r, inf, campaigns = d.r, d.inf, d.campaigns
    meta, labels = [], []
    for i in range(d.n):
        meta.append({
            "account_id": ids[i],
            "created_at": d.sc.start_us + int(created[i] * 1e6),
            "email_domain": email[i],
            "payment_fingerprint": pay[i],
            "country": countries[i],
            "org_id": d.org[i],
            "verified": bool(r.random() < inf["verified"]),
            "signup_path": _pick(r, inf["signup_path"]),
            "extra": None,
        })
        labels.append({
            "account_id": ids[i],
            "campaign_id": campaigns[d.camp[i]].cid if campaigns else None,
            "operator_id": campaigns[d.camp[i]].oid if campaigns else None,
            "archetype": d.pop.archetype,
            "is_attack": bool(d.s["attack"]),
        })
    return meta, labels


__all__ = ["build_world", "Tables", "PopAccounts", "Campaign", "PARAMS", "KINDS"]
