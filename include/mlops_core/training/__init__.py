"""Train stage: point-in-time training set -> time split -> Optuna-tuned XGBoost -> MLflow run with
lineage -> registered version with alias `challenger`.

Modules: spec (the `model` config section), dataset (windows and the time split), train (HPO, final fit,
metrics, artifacts), pyfunc_model (the logged model: returns probabilities), registry (versions, aliases).
Importing this package is light; heavy libraries load inside the functions that need them."""
