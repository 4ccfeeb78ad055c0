"""Prompt normalisation and template skeletons.

``normalize_prompt`` makes near-identical prompts compare equal (Unicode NFKC,
case-folding, whitespace). ``template_skeleton`` goes further and replaces the
variable slots a campaign fills in (numbers, URLs, e-mails, quoted payloads,
code blocks, identifiers) by placeholders, so that many prompts made from one
template share one skeleton, in any language.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_prompt", "template_skeleton", "PLACEHOLDERS"]

PLACEHOLDERS = ("<code>", "<url>", "<email>", "<uuid>", "<hex>", "<str>", "<num>", "<path>")

_WS = re.compile(r"\s+")
_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff]")
_CODE = re.compile(r"```.*?(?:```|$)", re.S)
_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX = re.compile(r"\b(?:0x)?[0-9a-f]{12,}\b", re.I)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.-]+){2,}")
# Quoted payloads: "..." '...' “...” «...» 「...」 『...』 and back-ticks.
_QUOTED = re.compile(
    r'"[^"\n]{1,2000}"|“[^”\n]{1,2000}”|«[^»\n]{1,2000}»|「[^」\n]{1,2000}」|『[^』\n]{1,2000}』'
    r"|`[^`\n]{1,500}`|(?<!\w)'[^'\n]{3,2000}'(?!\w)"
)
_QUOTES = ('"', "“", "«", "「", "『", "`", "'")  # the first character of each of _QUOTED's alternatives
_NUM = re.compile(r"[-+]?\d+(?:[.,:/]\d+)*(?:[eE][-+]?\d+)?%?")
_REPEAT_PH = re.compile(r"(<(?:num|str)>)(?:\W{0,3}\1)+")


def normalize_prompt(text: str | None) -> str:
    """NFKC, drop zero-width characters, case-fold, collapse whitespace, strip."""
    if not text:
        return ""
    t = unicodedata.normalize("NFKC", str(text))
    t = _ZERO_WIDTH.sub("", t)
    t = t.casefold()
    return _WS.sub(" ", t).strip()


def template_skeleton(text: str | None, max_chars: int = 4000) -> str:
    """The normalised prompt with its variable slots replaced by placeholders.

    Order matters: code blocks, URLs, e-mails, UUIDs, long hex ids, file paths,
    quoted payloads, then numbers. Runs of the same placeholder collapse into one
    (so "1, 2, 3" and "7, 8" give the same skeleton).
    """
    if not text:
        return ""
    t = unicodedata.normalize("NFKC", str(text)[:max_chars])
    t = _ZERO_WIDTH.sub("", t)
    # each pattern runs only where a character it cannot match without is present: the same text, sooner
    if "```" in t:
        t = _CODE.sub(" <code> ", t)
    t = _URL.sub(" <url> ", t)
    if "@" in t:
        t = _EMAIL.sub(" <email> ", t)
    if "-" in t:
        t = _UUID.sub(" <uuid> ", t)
    t = _HEX.sub(" <hex> ", t)
    if "/" in t or "\\" in t:
        t = _PATH.sub(" <path> ", t)
    if any(q in t for q in _QUOTES):
        t = _QUOTED.sub(" <str> ", t)
    t = t.casefold()
    t = _NUM.sub(" <num> ", t)
    t = _WS.sub(" ", t).strip()
    t = _REPEAT_PH.sub(r"\1", t)
    return t
