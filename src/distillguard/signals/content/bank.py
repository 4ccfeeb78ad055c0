"""The exemplar bank: hand-written prompts per intent and capability, many languages.

Files in ``data/`` (YAML, package data):

- ``<intent>*.yaml``: ``positive`` and ``hard_negative`` lists of groups; each
  group is one idea phrased in several languages (``en``, ``zh``, ``ru``, ...).
- ``capabilities*.yaml``: ordinary user tasks per capability class; they are
  the capability classifier's training data, neutral negatives for every
  intent, and the task payloads ("carriers") that exemplars are combined with.

Held-out evaluation splits by *group*, never inside one, so a held-out idea
is unseen in every language and phrasing.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

__all__ = [
    "DATA_DIR",
    "INTENTS",
    "CAPABILITIES",
    "STRONG_CAPABILITIES",
    "Exemplar",
    "load_bank",
    "bank_digest",
    "is_holdout_group",
    "intent_training_set",
    "capability_training_set",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
INTENTS = ("cot_elicitation", "rubric_grading", "dataset_synthesis", "jailbreak")
CAPABILITIES = ("agentic_coding", "tool_use", "reasoning_math", "knowledge", "creative", "chat", "other")
STRONG_CAPABILITIES = ("agentic_coding", "tool_use", "reasoning_math")


@dataclass(frozen=True)
class Exemplar:
    text: str
    source: str  # intent name, or "capability"
    kind: str  # "positive", "hard_negative", or the capability class
    group: str  # "<source>/<kind>/<group>"
    lang: str


def _groups_to_exemplars(groups, source: str, kind: str) -> list[Exemplar]:
    out = []
    for g in groups:
        gid = f"{source}/{kind}/{g['group']}"
        for lang, texts in g.items():
            if lang == "group":
                continue
            for t in texts:
                out.append(Exemplar(str(t).strip(), source, kind, gid, lang))
    return out


@lru_cache(maxsize=1)
def load_bank() -> tuple[Exemplar, ...]:
    """Every exemplar in the bank, in file order."""
    out: list[Exemplar] = []
    for intent in INTENTS:
        for path in sorted(DATA_DIR.glob(f"{intent}*.yaml")):
            d = yaml.safe_load(path.read_text(encoding="utf-8"))
            out += _groups_to_exemplars(d.get("positive", []), intent, "positive")
            out += _groups_to_exemplars(d.get("hard_negative", []), intent, "hard_negative")
    for path in sorted(DATA_DIR.glob("capabilities*.yaml")):
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
        for cls in CAPABILITIES:
            out += _groups_to_exemplars(d["classes"].get(cls, []), "capability", cls)
    return tuple(out)


@lru_cache(maxsize=1)
def bank_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(DATA_DIR.glob("*.yaml")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def is_holdout_group(group: str, fraction: float = 0.25) -> bool:
    """Deterministic split of groups: about ``fraction`` of groups are held out."""
    v = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return v < fraction


def _carriers(bank) -> dict[str, list[str]]:
    by_lang: dict[str, list[str]] = {}
    for e in bank:
        if e.source == "capability" and e.kind in ("agentic_coding", "reasoning_math", "knowledge", "tool_use", "other"):
            by_lang.setdefault(e.lang, []).append(e.text)
    return by_lang


def _combine(text: str, task: str, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"{text}\n\n{task}"
    if style == 1:
        return f"{task}\n\n{text}"
    if style == 2:
        return f"{task} {text}"
    return f"{text}\n{task}"


def _augment(e: Exemplar, n: int, carriers, rng: random.Random) -> list[str]:
    pool = carriers.get(e.lang) or carriers.get("en", [])
    return [_combine(e.text, rng.choice(pool), rng) for _ in range(n)] if pool else []


def intent_training_set(
    intent: str,
    include_holdout: bool = True,
    only_holdout: bool = False,
    augment: bool = True,
    seed: int = 0,
):
    """``(texts, labels, groups, langs)`` for one intent's binary classifier.

    Positives: the intent's positive exemplars (+2 combinations with a task
    payload each). Negatives: its hard negatives (+1 combination), every
    capability exemplar (+1 combination with another task, +1 with 3-6
    more tasks), other intents'
    positives (+1 combination) and hard negatives.
    ``include_holdout=False`` drops held-out groups (training for evaluation);
    ``only_holdout=True`` keeps only them (the evaluation set).
    """
    bank = load_bank()
    carriers = _carriers(bank)
    rng = random.Random(f"{intent}:{seed}")
    texts, labels, groups, langs = [], [], [], []
    for e in bank:
        held = is_holdout_group(e.group)
        if only_holdout and not held:
            continue
        if not include_holdout and held:
            continue
        if e.source == intent and e.kind == "positive":
            y, n_aug = 1, 2
        elif e.source == intent:
            y, n_aug = 0, 1
        elif e.source == "capability":
            y, n_aug = 0, 1  # two ordinary tasks in one prompt are still ordinary
        elif e.kind == "positive":
            y, n_aug = 0, 1  # another intent's request is not this one
        else:
            y, n_aug = 0, 0
        variants = [e.text] + (_augment(e, n_aug, carriers, rng) if augment else [])
        if augment and e.source == "capability":
            # long multi-task prompts are ordinary too: length alone must not score
            pool = carriers.get(e.lang) or carriers.get("en", [])
            if pool:
                variants.append(" ".join([e.text] + [rng.choice(pool) for _ in range(rng.randrange(3, 7))]))
        for t in variants:
            texts.append(t)
            labels.append(y)
            groups.append(e.group)
            langs.append(e.lang)
    return texts, labels, groups, langs


def capability_training_set(include_holdout: bool = True, only_holdout: bool = False):
    """``(texts, class_names, groups, langs)`` for the capability classifier."""
    texts, ys, groups, langs = [], [], [], []
    for e in load_bank():
        if e.source != "capability":
            continue
        held = is_holdout_group(e.group)
        if (only_holdout and not held) or (not include_holdout and held):
            continue
        texts.append(e.text)
        ys.append(e.kind)
        groups.append(e.group)
        langs.append(e.lang)
    return texts, ys, groups, langs
