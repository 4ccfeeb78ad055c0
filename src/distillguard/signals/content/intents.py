"""Intent detectors: reasoning-trace elicitation, rubric grading, dataset synthesis, jailbreaks.

Each scores every distinct sampled prompt (and system prompt) of an account
with the intent's per-prompt classifier (:mod:`.model`) and aggregates per
account (:func:`.sampling.aggregate_intent`): a high score needs both strong
matches (mean of the top-k prompt probabilities) and a sizeable share of the
account's prompts matching, so one odd prompt among many ordinary ones does
not make an account.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import yaml

from distillguard.signals.base import Signal, SignalResult

from .sampling import aggregate_intent, score_texts
from .view import PromptView

__all__ = ["PROMPT_THRESHOLDS", "THRESHOLDS_PATH", "IntentSignal", "CotElicitation", "RubricGrading", "DatasetSynthesis", "Jailbreak"]

#: Per-intent decision thresholds, chosen by ``make train-content`` on leave-sources-out figures.
THRESHOLDS_PATH = Path(__file__).resolve().parent / "prompt_thresholds.yaml"
#: Per-prompt probability at or above which a prompt matches each intent (scan, end users and ``classify``).
PROMPT_THRESHOLDS: dict[str, float] = {
    k: float(v) for k, v in yaml.safe_load(THRESHOLDS_PATH.read_text(encoding="utf-8"))["thresholds"].items()
}


class IntentSignal(Signal):
    """Base of the four intent signals; subclasses set ``name``, ``reason``, ``intent``.

    Parameters
    ----------
    prompt_threshold
        Per-prompt probability at or above which a prompt "matches"; default
        the intent's calibrated threshold (:data:`PROMPT_THRESHOLDS`).
    top_k
        How many of the account's best-matching prompts are averaged.
    full_share
        Share of matching prompts at which the share factor reaches 1.
    max_prompts
        Distinct prompts per account that are scored (deterministic sample).
    max_total_prompts
        Bound on distinct prompts scored per scan: the per-account quota
        shrinks (not below 4) when accounts x ``max_prompts`` would exceed it.
    system_weight
        Multiplier on system-prompt probabilities (system prompts are set by
        apps, not always by the account holder).
    min_matching, min_share
        The intent must be systematic: at least ``min_matching`` matching
        distinct prompts and at least ``min_share`` of the account's distinct
        prompts, else the score is 0 (calibrated on accounts simulated from
        real benign training text; see docs/content-signals.md).
    wrapper_min_prompts, wrapper_min_share
        A prompt also counts when its wrapper matches: the words it shares
        with at least this many, and this share, of the account's distinct
        prompts (:mod:`.wrappers`); ``wrapper_min_prompts=0`` turns it off.
        Default: on for the intents that ride on an arbitrary task (``wraps``).
    wrapper_threshold
        A wrapper lifts a prompt only when it scores at least this alone and
        matches (the prompt threshold) around short ordinary tasks
        (:data:`.wrappers.NEUTRAL_TASKS`, mean): a fragment is read out of
        the scorer's training distribution of whole prompts (an eval
        harness's "Let's think step by step, then give the option." reads as
        a jailbreak alone, 0.83, and not around a question, 0.33), so a
        prompt counts as its wrapper would around a short task, the same
        rule as any prompt.
    evidence_floor
        Accounts scoring at least this get evidence.
    n_examples
        Example prompts per account in the evidence.
    """

    requires: ClassVar[tuple[str, ...]] = ("prompt",)
    intent: ClassVar[str]
    wraps: ClassVar[bool] = False
    """The intent is an addition wrapped around any task (a persona, "show your reasoning"), so a short
    wrapper is diluted by long tasks and is read on its own too; grading and synthesis are the task itself,
    and an app's fixed instruction read without its payload looks like them."""

    def __init__(
        self,
        prompt_threshold: float | None = None,
        top_k: int = 3,
        full_share: float = 0.4,
        max_prompts: int = 64,
        max_total_prompts: int | None = 60_000,
        system_weight: float = 0.8,
        min_matching: int = 2,
        min_share: float = 0.25,
        wrapper_min_prompts: int | None = None,
        wrapper_min_share: float = 0.15,
        wrapper_threshold: float = 0.8,
        evidence_floor: float = 0.3,
        n_examples: int = 3,
    ):
        self.prompt_threshold = prompt_threshold
        self.top_k = top_k
        self.full_share = full_share
        self.max_prompts = max_prompts
        self.max_total_prompts = max_total_prompts
        self.system_weight = system_weight
        self.min_matching = min_matching
        self.min_share = min_share
        self.wrapper_min_prompts = wrapper_min_prompts
        self.wrapper_min_share = wrapper_min_share
        self.wrapper_threshold = wrapper_threshold
        self.evidence_floor = evidence_floor
        self.n_examples = n_examples

    def fit(self, data: PromptView | pa.Table) -> "IntentSignal":
        """Nothing to learn from traffic: the scorer is trained on the exemplar bank."""
        return self

    def prompt_scores(self, texts: list[str]):
        """Per-prompt probabilities of this signal's intent, one per text."""
        return score_texts(list(texts))["intent"][self.intent]

    def score(self, data: PromptView | pa.Table) -> SignalResult:
        view = PromptView.of(data)
        sample = view.sample(max_prompts=self.max_prompts, max_total=self.max_total_prompts)
        p = view.scores(sample.texts)["intent"][self.intent]
        threshold = PROMPT_THRESHOLDS[self.intent] if self.prompt_threshold is None else self.prompt_threshold
        wrappers = None
        min_prompts = (3 if self.wraps else 0) if self.wrapper_min_prompts is None else self.wrapper_min_prompts
        if min_prompts:
            per_account, alone, around, wtexts = view.wrapper_scores(sample, min_prompts, self.wrapper_min_share)
            wp, ctx = alone[self.intent], around[self.intent]
            lifts = (wp >= max(threshold, self.wrapper_threshold)) & (ctx >= threshold)
            wrappers = (per_account, np.where(lifts, wp, 0.0), wtexts)
        values, evidence = aggregate_intent(
            sample,
            p,
            threshold=threshold,
            top_k=self.top_k,
            full_share=self.full_share,
            system_weight=self.system_weight,
            min_matching=self.min_matching,
            min_share=self.min_share,
            evidence_floor=self.evidence_floor,
            n_examples=self.n_examples,
            wrappers=wrappers,
        )
        scores = pa.table(
            {
                "account_id": pa.array(sample.account_ids, pa.string()),
                self.name: pa.array(values, pa.float64()),
            }
        )
        return SignalResult(self.name, scores, evidence)

    @classmethod
    def _test_params(cls):
        yield {}
        yield {"prompt_threshold": 0.7, "top_k": 1, "max_prompts": 8, "wrapper_min_prompts": 0}


class CotElicitation(IntentSignal):
    """Prompts that coerce complete, hidden or verbatim reasoning traces.

    Not a request to "explain step by step" or "let's think step by step":
    those are hard negatives in the bank. What scores is asking for the
    model's full/hidden/raw chain of thought, unabridged, in a fixed format.
    """

    name = "cot_elicitation"
    reason = "COT_ELICITATION"
    intent = "cot_elicitation"
    wraps = True
    description = "Prompts coercing full, hidden or verbatim reasoning traces."


class RubricGrading(IntentSignal):
    """Reward-model / LLM-judge work: scoring responses on rubrics, preference pairs, rankings."""

    name = "rubric_grading"
    reason = "RUBRIC_GRADING"
    intent = "rubric_grading"
    description = "Prompts asking the model to grade, rank or compare responses (reward-model labels)."


class DatasetSynthesis(IntentSignal):
    """Bulk training-data generation: N question-answer pairs, instruction data, JSONL, dialogues."""

    name = "dataset_synthesis"
    reason = "DATASET_SYNTHESIS"
    intent = "dataset_synthesis"
    description = "Prompts generating training data in bulk (QA pairs, instruction/response sets)."


class Jailbreak(IntentSignal):
    """Instruction overrides, unrestricted personas, fictional framing used to unlock refusals."""

    name = "jailbreak"
    reason = "JAILBREAK"
    intent = "jailbreak"
    wraps = True
    description = "Prompts overriding instructions or safety (DAN-style personas, fake overrides)."
