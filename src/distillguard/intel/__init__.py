"""Threat-intelligence exchange: privacy-preserving STIX 2.1 over TAXII 2.1 (docs/intel.md).

- :func:`export_bundle` — campaigns -> STIX bundle of keyed-hash indicators, logged as a disclosure;
- :func:`import_bundle`, :func:`import_csv` — indicators into ``intel_indicators``;
- :func:`match_known_indicators` — the scan's memberships -> ``KNOWN_INDICATOR`` matches;
- :class:`IntelIndex` — loaded once, :meth:`IntelIndex.match_account` for the decision service.
"""
from distillguard.intel.export import ExportOptions, build_bundle, export_bundle
from distillguard.intel.importer import import_asn_map, import_bundle, import_csv, import_objects
from distillguard.intel.keys import KEY_ENV, generate_key, key_id, keyed_hash, load_key, resolve_key
from distillguard.intel.match import (
    IntelIndex, account_memberships, known_indicator_evidence, known_indicator_scores, match_known_indicators,
)

__all__ = [
    "KEY_ENV", "ExportOptions", "IntelIndex", "account_memberships", "build_bundle", "export_bundle",
    "generate_key", "import_asn_map", "import_bundle", "import_csv", "import_objects", "key_id", "keyed_hash",
    "known_indicator_evidence", "known_indicator_scores", "load_key", "match_known_indicators", "resolve_key",
]
