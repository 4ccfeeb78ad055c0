"""Reason codes -> STIX attack-pattern techniques (stable ids across exports)."""
from __future__ import annotations

import uuid

__all__ = ["TECHNIQUES", "techniques_for", "attack_pattern_id"]

_NS = uuid.UUID("6a1e0c1e-2f7d-4d8b-9a55-0d15711a9a4d")

# technique key -> (name, description, reason codes that show it)
TECHNIQUES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "reasoning-trace-coercion": (
        "Reasoning-trace coercion",
        "Prompts that coerce the model into emitting full step-by-step reasoning traces for harvesting.",
        ("COT_ELICITATION",),
    ),
    "rubric-harvesting": (
        "Rubric harvesting",
        "Prompts that make the model grade or score outputs against rubrics, harvesting reward-model labels.",
        ("RUBRIC_GRADING",),
    ),
    "jailbreak-wrapping": (
        "Jailbreak wrapping",
        "Harvest prompts wrapped in jailbreak templates to unlock refused answers.",
        ("JAILBREAK", "REFUSAL_PROBING"),
    ),
    "proxy-rotation": (
        "Proxy rotation",
        "Many accounts rotating through shared proxy infrastructure (IPs, subnets, client fingerprints).",
        ("SHARED_INFRA",),
    ),
    "shared-payment": (
        "Shared payment instruments",
        "Many accounts funded by a few payment instruments.",
        ("SHARED_PAYMENT",),
    ),
    "account-farming": (
        "Account farming",
        "Bursts of account sign-ups operated together, each account kept light.",
        ("SIGNUP_BURST", "LOCKSTEP", "MACHINE_TIMING"),
    ),
    "dataset-synthesis": (
        "Dataset synthesis",
        "Prompts that make the model generate training data sets at volume.",
        ("DATASET_SYNTHESIS",),
    ),
    "capability-sweep": (
        "Capability sweep",
        "Systematic coverage of the provider's strongest capabilities (coding, tool use, reasoning).",
        ("CAPABILITY_SWEEP", "MODEL_PIVOT"),
    ),
    "templated-harvest": (
        "Templated harvest",
        "One prompt template filled with many inputs across accounts.",
        ("TEMPLATE_REUSE",),
    ),
    "output-maximisation": (
        "Output maximisation",
        "Requests tuned to extract as much output as possible (long outputs, many samples, logprobs).",
        ("HIGH_OUTPUT_RATIO", "SAMPLING_FANOUT", "LOGPROBS_HARVEST"),
    ),
}

_BY_REASON = {code: key for key, (_, _, codes) in TECHNIQUES.items() for code in codes}


def techniques_for(reasons) -> list[str]:
    """Technique keys shown by a campaign's reason codes (sorted, unique)."""
    return sorted({_BY_REASON[r] for r in reasons if r in _BY_REASON})


def attack_pattern_id(key: str) -> str:
    """The same STIX id for a technique in every export, so peers can dedupe."""
    return f"attack-pattern--{uuid.uuid5(_NS, key)}"
