"""Shingles of a prompt's template skeleton, for MinHash template linkage.

Word 3-grams where the script separates words; character 4-grams where it
does not (Chinese, Japanese, Thai), so templates link in any language.
"""
from __future__ import annotations

import re

from distillguard.text.normalize import template_skeleton

__all__ = ["shingles"]

_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")


def shingles(prompt: str, width: int = 3, max_chars: int = 1500) -> list[bytes]:
    """Distinct shingles of the prompt's skeleton (empty when too short)."""
    skel = template_skeleton(prompt)[:max_chars]
    if len(_UNSPACED.findall(skel)) > len(skel) / 4:
        text = skel.replace(" ", "")
        grams = {text[i:i + width + 1] for i in range(max(0, len(text) - width))}
    else:
        words = skel.split()
        grams = {" ".join(words[i:i + width]) for i in range(max(0, len(words) - width + 1))}
    return [g.encode() for g in grams]
