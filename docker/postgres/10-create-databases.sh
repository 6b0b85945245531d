#!/usr/bin/env bash
# Run once by the postgres image, when its data volume is empty (/docker-entrypoint-initdb.d): one role and one
# database for the Airflow metadata DB, one role for MLflow with two databases: its backend store (mlflow) and the
# users and permissions of its basic-auth app (mlflow_auth). Passwords come from the environment
# (docker/.env); psql quotes them (:'var'), so no value is ever pasted into SQL text or shown in a log.
set -euo pipefail

for var in POSTGRES_PASSWORD AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD; do
  value=${!var:-}
  if [ -z "$value" ] || [[ "${value,,}" == *change-me* ]]; then
    echo "$var is unset or still the placeholder of docker/.env.example: refusing to initialise" >&2
    exit 1
  fi
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
SQL
echo "created databases airflow, mlflow and mlflow_auth"
