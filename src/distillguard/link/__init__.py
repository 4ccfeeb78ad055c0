"""Linkage: accounts joined through shared evidence, grouped into campaigns."""
from distillguard.link.graph import Communities, find_communities
from distillguard.link.rules import LinkRule, load_rules

__all__ = ["Communities", "LinkRule", "find_communities", "load_rules"]
