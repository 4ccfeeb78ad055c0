"""Content intents on public text nobody on the team wrote: ``make bench-content``.

Reads the corpora fetched by ``make corpora`` (skips with a message when they
are not there) and prints:

1. per source, sub-source and script: the share of prompts matched per intent
   at the scan's per-prompt thresholds (``prompt_thresholds.yaml``), for the held-out (``eval``) sources
   (never trained on; near-duplicates removed from training) and, marked as
   such, for the training sources;
2. account level: simulated benign accounts whose distinct prompts are drawn
   from the held-out benign corpora (real chat first turns, instructions,
   Chinese and English writing requests), and a jailbreak-wrapped ring whose
   accounts wrap ordinary tasks in held-out in-the-wild jailbreaks: the share
   of accounts that carry each intent (score > 0: the signals give 0 unless
   the intent is systematic in the account);
3. reseller keys: ``END_USER_HARVEST`` on router keys whose end users send
   held-out real prompts (each from one sub-source), legitimate and with a
   few end users mixing in held-out jailbreak-wrapped tasks (docs/content-signals.md);
4. ``distillguard classify`` throughput (prompts/s, end to end: a subprocess
   on a JSONL file, start-up included), against the bare scorer in the same
   run, on chat-length prompts and on the long held-out mix.

Targets (issue 13): benign held-out <= 1% per intent; held-out jailbreaks
>= 0.85; held-out judge prompts >= 0.8; benign accounts with a content reason
<= 1%; ring accounts carrying JAILBREAK >= 90%; classify >= 2,000 prompts/s.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from distillguard.signals.content import corpora
from distillguard.signals.content.bank import INTENTS
from distillguard.signals.content.end_users import EndUserHarvest
from distillguard.signals.content.intents import PROMPT_THRESHOLDS, CotElicitation, DatasetSynthesis, Jailbreak, RubricGrading
from distillguard.signals.content.model import intent_scorer

SHORT = {"cot_elicitation": "cot", "rubric_grading": "rubric", "dataset_synthesis": "synth", "jailbreak": "jailbreak"}
TARGET_BENIGN = 0.01
TARGET_POSITIVE = {"jailbreak": 0.85, "rubric_grading": 0.8}


def per_prompt(records, probs) -> list[dict]:
    cells: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        for key in ((r.source, "all"), (r.source, f"script={r.script}"), (r.source, f"group={r.group}")):
            cells[key].append(i)
    rows = []
    for (source, cut), idx in sorted(cells.items()):
        if cut.startswith("group=") and cut[6:] == source:
            continue
        rec = records[idx[0]]
        row = {"source": source, "cut": cut, "use": rec.use, "role": rec.role, "n": len(idx)}
        for k in INTENTS:
            row[k] = float(np.mean(probs[k][idx] >= PROMPT_THRESHOLDS[k]))
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'source':30s} {'cut':26s} {'use':5s} {'role':15s} {'n':>5s} " + " ".join(f"{SHORT[k]:>9s}" for k in INTENTS))
    for r in rows:
        cells = []
        for k in INTENTS:
            v = r[k]
            mark = ""
            if r["use"] == "eval" and r["cut"] == "all":
                if r["role"] == "benign" and v > TARGET_BENIGN:
                    mark = "!"
                if r["role"] == k and v < TARGET_POSITIVE.get(k, 0):
                    mark = "!"
            cells.append(f"{100 * v:8.1f}{mark or '%'}")
        print(f"{r['source'][:30]:30s} {r['cut'][:26]:26s} {r['use']:5s} {r['role'][:15]:15s} {r['n']:5d} " + " ".join(cells))


def _wrap(template: str, task: str) -> str:
    """A jailbreak template around a task: in its slot if it has one, else after it."""
    for slot in ("[INSERT PROMPT HERE]", "[PROMPT]", "{prompt}", "{{ prompt }}"):
        if slot in template:
            return template.replace(slot, task)
    return f"{template}\n\n{task}"


def accounts_table(benign: list[str], ring_templates: list[str], tasks: list[str], n_benign: int, n_ring: int, seed: int):
    """Benign accounts (1-60 distinct real prompts, log-uniform) and ring accounts (1-3 templates, 10-40 prompts, 70% wrapped)."""
    rng = random.Random(seed)
    acc, prompts, kind = [], [], {}
    for a in range(n_benign):
        name = f"benign{a}"
        kind[name] = "benign"
        k = int(round(np.exp(rng.uniform(0, np.log(60)))))
        for t in rng.sample(benign, k):
            acc.append(name)
            prompts.append(t)
    for a in range(n_ring):
        name = f"ring{a}"
        kind[name] = "ring"
        temps = rng.sample(ring_templates, rng.randint(1, 3))
        for _ in range(rng.randint(10, 40)):
            task = rng.choice(tasks)
            acc.append(name)
            prompts.append(_wrap(rng.choice(temps), task) if rng.random() < 0.7 else task)
    return pa.table({"account_id": acc, "prompt": prompts}), kind


def account_level(seed: int = 7, n_benign: int = 1000, n_ring: int = 100) -> dict:
    held = corpora.eval_records()
    benign = [r.text for r in held if r.role == "benign"]
    templates = [r.text for r in held if r.role == "jailbreak"]
    tasks = [r.text for r in held if r.source == "alpaca_eval_instructions"]
    table, kind = accounts_table(benign, templates, tasks, n_benign, n_ring, seed)
    carried: dict[str, dict[str, list[bool]]] = {"benign": defaultdict(list), "ring": defaultdict(list)}
    any_benign = defaultdict(bool)
    for cls in (CotElicitation, RubricGrading, DatasetSynthesis, Jailbreak):
        res = cls().score(table)
        for a, s in zip(res.scores.column("account_id").to_pylist(), res.scores.column(cls.name).to_pylist()):
            carried[kind[a]][cls.name].append(s > 0)
            if kind[a] == "benign" and s > 0:
                any_benign[a] = True
    out = {
        "benign_accounts": n_benign,
        "ring_accounts": n_ring,
        "benign_carrying": {k: float(np.mean(v)) for k, v in carried["benign"].items()},
        "benign_carrying_any": len(any_benign) / n_benign,
        "ring_carrying": {k: float(np.mean(v)) for k, v in carried["ring"].items()},
    }
    return out


def reseller_keys(benign_by_group: dict[str, list[str]], harvest: list[str], n_keys: int, mixed: bool, rng: random.Random):
    """The rows ``end_user_sample`` gives for router keys whose end users send real held-out prompts.

    Each end user draws from one sub-source (a writer, a coder, a Chinese user: ordinary customers differ
    from each other far more than a key's average suggests), traffic shares are skewed (the busiest carries
    up to a third). A mixed key adds 2-3 end users carrying 30-45% of its traffic, a third of whose prompts
    are held-out jailbreaks wrapped around ordinary tasks.
    """
    groups = sorted(benign_by_group)
    rows = []
    for k in range(n_keys):
        key = f"{'mixed' if mixed else 'legit'}{k}"
        users = {f"u{j}": rng.sample(benign_by_group[g := rng.choice(groups)], min(len(benign_by_group[g]), rng.randint(5, 60)))
                 for j in range(rng.randint(8, 30))}
        events = {u: len(ps) * rng.randint(1, 4) for u, ps in users.items()}
        if mixed:
            total = sum(events.values())
            n_h = rng.randint(2, 3)
            for j in range(n_h):
                ps = [rng.choice(harvest) if rng.random() < 1 / 3 else rng.choice(benign_by_group[rng.choice(groups)])
                      for _ in range(60)]
                users[f"h{j}"] = sorted(set(ps))
                events[f"h{j}"] = int(total * rng.uniform(0.3, 0.45) / (1 - 0.4) / n_h)
        total = sum(events.values())
        busiest = sorted(users, key=lambda u: (-events[u], u))[:5]
        others = [(u, p) for u in users if u not in busiest for p in users[u]]
        sample = [(u, p) for u in busiest for p in users[u][:40]] + rng.sample(others, min(40, len(others)))
        rows += [{"account_id": key, "end_user": u, "prompt": p, "uses": 1, "busiest": u in busiest,
                  "eu_events": events[u], "account_eu_events": total} for u, p in sample]
    return rows


def reseller_level(seed: int = 11, n_keys: int = 300) -> dict:
    """END_USER_HARVEST on router keys built from real held-out text: legitimate keys must score 0."""
    held = corpora.eval_records()
    by_group: dict[str, list[str]] = defaultdict(list)
    for r in held:
        if r.role == "benign":
            by_group[r.group].append(r.text)
    templates = [r.text for r in held if r.role == "jailbreak"]
    tasks = [r.text for r in held if r.source == "alpaca_eval_instructions"]
    rng = random.Random(seed)
    harvest = [_wrap(rng.choice(templates), rng.choice(tasks)) for _ in range(2000)]
    out = {}
    for mixed in (False, True):
        table = pa.Table.from_pylist(reseller_keys(by_group, harvest, n_keys, mixed, rng))
        det = EndUserHarvest()
        scores = det.score(table).scores.column("end_user_harvest").to_numpy()
        out["mixed" if mixed else "legitimate"] = {"keys": n_keys, "scored": float(np.mean(scores > 0)),
                                                   "evidence": float(np.mean(scores >= det.evidence_floor)),
                                                   "strong": float(np.mean(scores >= 0.5))}
    return out


def classify_speed(texts: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prompts.jsonl"
        path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "distillguard.cli", "classify", str(path)],
            capture_output=True, text=True, env=env, check=True,
        )
        cli_s = time.perf_counter() - t0
    assert r.stdout.count("\n") == len(texts)
    scorer = intent_scorer()
    t0 = time.perf_counter()
    scorer.predict(texts)
    bare_s = time.perf_counter() - t0
    return {"prompts": len(texts), "classify_s": round(cli_s, 2), "classify_per_s": round(len(texts) / cli_s),
            "bare_scorer_per_s": round(len(texts) / bare_s), "ratio_to_bare": round(bare_s / cli_s, 2)}


def main() -> int:
    if not corpora.available():
        print("bench-content: skipped: corpora not fetched (run `make corpora`; a registry may be unreachable)")
        return 0
    held = corpora.eval_records()
    train = corpora.training_records()
    scorer = intent_scorer()
    records = held + train
    probs = scorer.predict([r.text for r in records])
    print(f"# per prompt, share matched at the calibrated thresholds {PROMPT_THRESHOLDS} (eval = held-out source; train = fitted on)")
    print_table(per_prompt(records, probs))
    print("\n# account level (held-out corpora)")
    acc = account_level()
    print(json.dumps(acc, indent=1))
    print("\n# reseller keys (held-out corpora): END_USER_HARVEST > 0, at the evidence floor and >= 0.5 (strong), legitimate vs mixed")
    print(json.dumps(reseller_level(), indent=1))
    print("\n# classify throughput (distinct prompts: a random suffix on each)")
    rng = random.Random(0)
    workloads = {
        "chat first turns (AlpacaEval instructions)": [r.text for r in held if r.source == "alpaca_eval_instructions"],
        "every held-out source (long jailbreaks, pasted documents)": [r.text for r in held],
    }
    for (name, pool), n in zip(workloads.items(), (30_000, 8_000)):
        texts = [f"{rng.choice(pool)} ({i})" for i in range(n)]
        res = classify_speed(texts)
        res["mean_chars"] = round(float(np.mean([len(t) for t in texts])))
        print(name, json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
