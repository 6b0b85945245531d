"""Real-time serving (GitHub issue #18): one process, one endpoint per use case, champion/challenger traffic split
by entity key, features from the request or the online store, model switches without downtime.

    python -m mlops_core.serving --use-case churn [--use-case spend] --host 127.0.0.1 --port 8090

spec.py        the `serving:` section of a use-case YAML (served entities by alias, routes, mode, auth)
routing.py     sticky hash routing and the immutable routing table an endpoint swaps
predictor.py   a loaded version: raw columns -> float32 matrix -> booster.inplace_predict; SHAP contributions
store.py       the online store (SQLite file per use case) and refresh_online_store (the features job calls it)
endpoint.py    one use case's endpoint: request checks, routing, scoring, reload, alias polling
app.py         the FastAPI app (FastAPI and uvicorn come with MLflow)
client.py      reload_endpoint(url, use_case, token): what a DAG task calls after a promotion (stdlib only)
databricks.py  the same section as a Databricks serving-endpoint create/update request

Importing this package imports nothing heavy: the features job imports store.py on a worker."""
