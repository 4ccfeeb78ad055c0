"""Intel tables in the DuckDB store.

- ``intel_indicators``: what was imported (keyed hashes only, never raw values);
- ``intel_disclosures``: one row per export (what, when, to whom, bundle sha256);
- ``intel_asn_map``: local IP prefix -> ASN table, so ASN indicators can match IPs.
"""
from __future__ import annotations

__all__ = ["ensure_tables", "INDICATOR_COLUMNS"]

INDICATOR_COLUMNS = (
    "source", "indicator_id", "kind", "keyed_hash", "prefix_len", "confidence",
    "valid_from", "valid_until", "campaign_ref", "scheme", "key_id", "imported_at",
)

_DDL = [
    """CREATE TABLE IF NOT EXISTS intel_indicators (
        source VARCHAR, indicator_id VARCHAR, kind VARCHAR, keyed_hash VARCHAR,
        prefix_len INTEGER, confidence INTEGER, valid_from TIMESTAMPTZ, valid_until TIMESTAMPTZ,
        campaign_ref VARCHAR, scheme VARCHAR, key_id VARCHAR, imported_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS intel_disclosures (
        export_id VARCHAR, exported_at TIMESTAMPTZ, recipient VARCHAR, tlp VARCHAR,
        campaign_ids VARCHAR[], n_campaigns BIGINT, n_indicators BIGINT, kinds_json VARCHAR,
        bundle_id VARCHAR, bundle_sha256 VARCHAR, destination VARCHAR, key_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS intel_asn_map (cidr VARCHAR, prefix_len INTEGER, asn VARCHAR)""",
]


def ensure_tables(con) -> None:
    for ddl in _DDL:
        con.execute(ddl)
