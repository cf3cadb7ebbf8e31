"""TraceLedger HTTP API: certificate ingestion, Handle-style identifiers, anchoring and verification."""
