"""Tamper-evident case files and the transparency report.

- :func:`export_case` writes one campaign's case file (HTML, PDF, JSON, CSV and
  a manifest of SHA-256 hashes chained with the audit log head);
- :func:`verify_case` re-checks a case folder and names what changed;
- :func:`transparency_report` writes the aggregate figures for a period with no
  customer identifier.
"""
from distillguard.case.export import export_case, verify_case
from distillguard.case.transparency import transparency_report

__all__ = ["export_case", "verify_case", "transparency_report"]
