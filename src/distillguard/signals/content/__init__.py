"""Content detectors over per-account prompt samples.

Input: a table with ``account_id``, ``prompt`` and optionally
``system_prompt`` (and ``uses``), such as
:func:`distillguard.features.samples.prompt_sample`. Output: one
:class:`~distillguard.signals.base.SignalResult` per signal with a score in
[0, 1] per account and evidence (top example prompts with their per-prompt
scores, share of prompts matching). See ``docs/content-signals.md``.
"""
from .bank import CAPABILITIES, INTENTS, STRONG_CAPABILITIES
from .capability import CapabilitySweep
from .end_users import EndUserHarvest
from .intents import CotElicitation, DatasetSynthesis, IntentSignal, Jailbreak, RubricGrading
from .model import CapabilityScorer, IntentScorer, capability_scorer, intent_scorer

CONTENT_SIGNALS = (CotElicitation, RubricGrading, DatasetSynthesis, Jailbreak, CapabilitySweep, EndUserHarvest)

__all__ = [
    "CONTENT_SIGNALS",
    "CotElicitation",
    "RubricGrading",
    "DatasetSynthesis",
    "Jailbreak",
    "CapabilitySweep",
    "EndUserHarvest",
    "IntentSignal",
    "IntentScorer",
    "CapabilityScorer",
    "intent_scorer",
    "capability_scorer",
    "INTENTS",
    "CAPABILITIES",
    "STRONG_CAPABILITIES",
]
