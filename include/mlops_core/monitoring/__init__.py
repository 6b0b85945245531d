"""Monitoring stage: nightly Evidently drift reports, the drift_metrics table, and the retrain-on-drift rule.

spec.py        the use case's `monitoring` section (methods, thresholds, sampling, reference, retrain rule)
drift.py       current and reference data, the Evidently report, drift_metrics rows (Spark + Evidently)
rule.py        the k-of-n + cooldown retrain rule over drift_metrics rows (pure Python: the triggerer runs it)
delta_log.py   reads small Delta tables without Spark (for the triggerer)
retrain_log.py ops.retrain_triggers: when drift last triggered a retrain (the cooldown)
store.py       the reports store (local folder or s3://)
history.py     what the trigger reads: recent drift_metrics rows + retrain records, by table path
"""
