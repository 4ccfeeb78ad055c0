"""distillguard: detect and stop distillation campaigns against LLM APIs."""

__version__ = "0.1.0"
