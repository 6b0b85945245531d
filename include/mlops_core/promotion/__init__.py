"""Validation-gated promotion: challenger vs champion on the same held-out data, a decision record, alias
moves (`champion`, `previous_champion`), rollback, and the promotion-history table."""
