"""Ingest stage: landing files → typed, validated bronze Delta tables, bad input → quarantine."""
