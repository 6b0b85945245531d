"""Run the serving process:

    python -m mlops_core.serving --use-case churn --use-case spend --host 127.0.0.1 --port 8090 [--env local]

Without --use-case it serves every enabled use case (MLOPS_USE_CASES limits them) that has a model section. The
port defaults to $SERVING_PORT, else 8090; the host to 127.0.0.1 (a token is strongly advised on any other).
MLflow is the environment's (mlflow.tracking_uri / registry_uri); the online store is the file the features job
writes for the environment (mlops_core.serving.store.online_store_path)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mlops_core.errors import ConfigError

log = logging.getLogger("mlops.serving")
DEFAULT_PORT = 8090
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def build_endpoints(use_cases: list[str] | None, env_name: str | None = None):
    """{use case: Endpoint} for the named use cases (default: every enabled one with a model and a `serving:`
    section)."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.config.use_case import load_use_cases
    from mlops_core.serving.endpoint import Endpoint
    from mlops_core.serving.inference_log import InferenceLogWriter, inference_log_root
    from mlops_core.serving.spec import ServingSpec
    from mlops_core.serving.store import OnlineStore, online_store_path
    from mlops_core.tracking import configure_mlflow

    env = load_environment(env_name)
    configure_mlflow(env)
    if use_cases:
        configs = [load_use_case(name) for name in use_cases]
    else:
        catalog = load_use_cases()
        for file, error in catalog.errors.items():
            log.error("use case %s does not load, not served: %s", file, error)
        # a use case opts in with a `serving:` section (its DAGs then reload the endpoint after an alias moves)
        configs = [c for c in catalog.enabled if c.model is not None and c.serving is not None]
    endpoints = {}
    for cfg in configs:
        cfg = cfg.for_environment(env)
        spec = cfg.serving or ServingSpec()
        token = None
        if spec.auth_token_env:
            token = os.environ.get(spec.auth_token_env)
            if not token:
                raise ConfigError(f"use case {cfg.name!r}: serving.auth_token_env names {spec.auth_token_env!r}, "
                                  "which is not set (or empty) in this process's environment")
        store = None if env.storage.catalog else OnlineStore(online_store_path(env, cfg))
        endpoint = endpoints[cfg.name] = Endpoint(cfg, spec, store, token)
        if spec.inference_log.enabled:
            endpoint.inference_log = InferenceLogWriter(inference_log_root(env), cfg.name, spec.inference_log)
    if not endpoints:
        raise ConfigError("no use case to serve: name one with --use-case (it needs a model section)")
    return endpoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_core.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", action="append", dest="use_cases", help="serve this use case (repeatable)")
    parser.add_argument("--env", default=None, help="environment config (default $MLOPS_ENV or local)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SERVING_PORT") or DEFAULT_PORT))
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in the server log
    try:
        endpoints = build_endpoints(args.use_cases, args.env)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK and not all(ep.token for ep in endpoints.values()):
        log.warning("binding %s (not loopback) with an endpoint that has no auth token", args.host)
    import uvicorn

    from mlops_core.serving.app import create_app

    app = create_app(endpoints)
    log.info("serving %s on http://%s:%s", ", ".join(endpoints), args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
