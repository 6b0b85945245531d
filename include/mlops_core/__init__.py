"""Core library of the MLOps DAGs.

Everything here runs without Airflow: inside an Airflow worker, as a local Spark job
(``python -m mlops_core.jobs.<stage>``), or on a Databricks cluster from the built wheel.
"""

__version__ = "0.1.0"
