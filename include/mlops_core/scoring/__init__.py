"""Batch scoring: the champion (pinned to one version per run) scores a feature snapshot into
gold.predictions; a challenger, when one exists, shadow-scores into gold.shadow_predictions."""
