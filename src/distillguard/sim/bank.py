"""Compiled prompt templates, slot fillers and system prompts as flat tables.

Templates are split into four literal segments around up to three slots, so a
prompt is ``seg0 + fill1 + seg1 + fill2 + seg2 + fill3 + seg3`` and a whole
chunk of prompts is assembled by array ``take`` + one element-wise join.
"""
from __future__ import annotations

import itertools
import random
import re
import zlib

import numpy as np

from distillguard.sim.fillers import build_fillers
from distillguard.sim.grammar_data import FAMILIES, GRAMMAR, KINDS, LANGS, SYSTEM

SLOT_RE = re.compile(r"(?<!\{)\{([a-z_]+)\}(?!\})")
MAX_SLOTS = 3
MAX_TEMPLATES = 64


def expand(kind: str, family: str, lang: str) -> list[str]:
    """All template strings of one (kind, family, language), capped deterministically."""
    parts = GRAMMAR[kind][family][lang]
    options = [p.split("|") for p in parts]
    combos = ["".join(c) for c in itertools.product(*options)]
    combos = [c for c in dict.fromkeys(combos) if c.strip()]
    if len(combos) > MAX_TEMPLATES:
        r = random.Random(zlib.crc32(f"{kind}/{family}/{lang}".encode()))
        combos = sorted(r.sample(combos, MAX_TEMPLATES), key=combos.index)
    return combos


def all_templates(family: str) -> dict[tuple[str, str], list[str]]:
    if family not in FAMILIES:
        raise ValueError(family)
    return {(k, lang): expand(k, family, lang) for k in KINDS for lang in LANGS}


def _unescape(s: str) -> str:
    return s.replace("{{", "{").replace("}}", "}")


class Bank:
    """Flat tables for one phrasing family."""

    def __init__(self, family: str, seed: int):
        self.family = family
        fillers = build_fillers(seed)
        # filler table: index 0 is the empty filler
        self.fill_texts: list[str] = [""]
        self.fill_off: dict[tuple[str, str], tuple[int, int]] = {}
        for slot, per_lang in fillers.items():
            for lang, items in per_lang.items():
                self.fill_off[(slot, lang)] = (len(self.fill_texts), len(items))
                self.fill_texts.extend(items)
        self.seg_texts: list[str] = []
        seg_index: dict[str, int] = {}

        def seg(s: str) -> int:
            s = _unescape(s)
            if s not in seg_index:
                seg_index[s] = len(self.seg_texts)
                self.seg_texts.append(s)
            return seg_index[s]

        self.templates: list[str] = []
        segs, offs, sizes, t_lang, t_kind = [], [], [], [], []
        self.by_kl: dict[tuple[str, str], np.ndarray] = {}
        for (kind, lang), texts in all_templates(family).items():
            ids = []
            for text in texts:
                pieces = SLOT_RE.split(text)
                lits, slots = pieces[0::2], pieces[1::2]
                if len(slots) > MAX_SLOTS:
                    raise ValueError(f"template with more than {MAX_SLOTS} slots: {text!r}")
                lits = lits + [""] * (MAX_SLOTS + 1 - len(lits))
                row_off, row_size = [], []
                for j in range(MAX_SLOTS):
                    if j < len(slots):
                        o, n = self.fill_off[(slots[j], lang)]
                    else:
                        o, n = 0, 1
                    row_off.append(o)
                    row_size.append(n)
                ids.append(len(self.templates))
                self.templates.append(text)
                segs.append([seg(x) for x in lits])
                offs.append(row_off)
                sizes.append(row_size)
                t_lang.append(LANGS.index(lang))
                t_kind.append(KINDS.index(kind))
            self.by_kl[(kind, lang)] = np.array(ids, dtype=np.int32)
        self.t_seg = np.array(segs, dtype=np.int32)
        self.t_off = np.array(offs, dtype=np.int64)
        self.t_size = np.array(sizes, dtype=np.int64)
        self.t_lang = np.array(t_lang, dtype=np.int8)
        self.t_kind = np.array(t_kind, dtype=np.int8)
        self.fillers = fillers

    def system_prompt(self, kind: str, rng: random.Random) -> str:
        text = rng.choice(SYSTEM[kind][self.family])
        return text.format(company=rng.choice(self.fillers["company"]["en"]), tools=rng.choice(self.fillers["tools"]["en"]))
