"""AWS credentials for jobs of the local backend, from an Airflow connection (`aws_default` by default).

A local job is a child process with its own Spark (S3A) and boto3 clients, which read the standard AWS variables.
The connection is resolved through the Amazon provider's AwsBaseHook, so everything it supports works: keys in
login/password, a session token, a role to assume (temporary keys are fetched here, in the worker), a region and
an endpoint (MinIO, a moto server). Secrets go only into the child's environment: never onto its command line,
never into a log (they are also registered with Airflow's secrets masker, in case a job prints one)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def aws_job_environment(conn_id: str, task_log: Any = log) -> dict[str, str]:
    """The AWS_* variables a job process needs for `conn_id`; {} when the connection does not exist.

    A connection without keys and without a role contributes only its region and endpoint: the job then uses the
    worker's own credential chain (environment, profile, web identity, instance role), as it would without it."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.sdk.log import mask_secret

    # The hook reads the connection once; a missing one leaves it empty (no region, endpoint, keys or role).
    hook = AwsBaseHook(aws_conn_id=conn_id, client_type="s3")
    config = hook.conn_config
    env: dict[str, str] = {}
    if config.region_name:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = config.region_name
    endpoint = config.get_service_endpoint_url("s3")  # service_config.s3.endpoint_url, else endpoint_url
    if endpoint:
        env["AWS_ENDPOINT_URL_S3"] = endpoint
    if not (config.aws_access_key_id or config.role_arn):
        task_log.info("AWS connection %r: no keys and no role (or no such connection): the job uses the worker's "
                      "AWS credential chain%s", conn_id,
                      f" (region/endpoint from the connection: {sorted(env)})" if env else "")
        return env
    credentials = hook.get_credentials(region_name=config.region_name)  # assumes the role when there is one
    for secret in (credentials.secret_key, credentials.token):
        if secret:
            mask_secret(secret)
    env["AWS_ACCESS_KEY_ID"] = credentials.access_key
    env["AWS_SECRET_ACCESS_KEY"] = credentials.secret_key
    if credentials.token:
        env["AWS_SESSION_TOKEN"] = credentials.token
    task_log.info("AWS credentials of connection %r (%s) handed to the job's environment", conn_id,
                  "assumed role" if config.role_arn else "keys")
    return env
