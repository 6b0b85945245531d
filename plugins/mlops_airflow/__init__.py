"""Airflow face of the project: operators, sensors, triggers, hooks, notifiers.

Thin by design: each piece resolves connections and settings through Airflow, then calls the core
library (mlops_core). Lives in plugins/, which Airflow puts on sys.path for every component."""
