"""What the project sends to Databricks, built without Airflow and without a workspace.

* `runtime`: the Databricks runtimes the jobs are known to work on (the table of docs/databricks.md), and the
  check that refuses any other runtime with the reason;
* `libraries`: the task libraries every job installs on top of the runtime (the lock in
  include/config/databricks/);
* `payload`: the Jobs API runs/submit request of one job, the one the Airflow backend
  (mlops_airflow.backends.databricks) hands to the provider's operator;
* `sdk`: the lossless round trip of a request through databricks-sdk's request classes;
* `wheel`: the check of the built wheel's metadata against the runtime (`make wheel`)."""
