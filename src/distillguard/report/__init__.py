"""Renderers of a scan result: files for people and for other programs."""
from distillguard.report.writers import store_results, write_outputs

__all__ = ["store_results", "write_outputs"]
