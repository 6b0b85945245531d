"""No secret in the repository or in the image's build context: AWS access key ids, private keys, Databricks,
GitHub and Slack tokens, credentials inside URLs, and literal values of password/secret/token keys, with the
known placeholders (change-me, replace-with-..., ${VAR} references) allowed. Findings name the file, the line
and the rule, never the value."""

from __future__ import annotations

import pytest

from ._support import ENV_EXAMPLE, ROOT, build_context_files, git_files, read_env_file, scan_files, scan_text


def test_repository_files_hold_no_secret():
    files = git_files()
    assert "docker/compose.yaml" in files and "docker/.env.example" in files and "airflow_settings.yaml" in files
    findings = scan_files(files)
    assert not findings, "possible secrets:\n" + "\n".join(map(str, findings))


def test_build_context_holds_no_secret():
    # The context is what `docker build` sends, tracked by git or not: a stray key file would end up in a layer.
    findings = scan_files(build_context_files())
    assert not findings, "possible secrets in the build context:\n" + "\n".join(map(str, findings))


def test_env_example_holds_placeholders_only():
    values = read_env_file(ENV_EXAMPLE)
    secrets = {k: v for k, v in values.items() if any(w in k for w in ("PASSWORD", "SECRET", "KEY_ID", "FERNET", "JWT"))}
    assert secrets and all(v.startswith("change-me") for v in secrets.values()), secrets
    assert not scan_text("docker/.env.example", ENV_EXAMPLE.read_text())


def test_a_filled_in_env_file_is_kept_out_of_git_and_the_image():
    import subprocess

    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "docker/.env"]).returncode
    assert ignored == 0, "git does not ignore docker/.env"


# The samples are assembled at run time so that this file does not trip the repository scan itself.
_AWS_KEY = "AKIA" + "Q3ABCDEFGHIJ2345"
_DATABRICKS = "dapi" + "0123456789abcdef" * 2
_PRIVATE_KEY = "-----BEGIN " + "OPENSSH PRIVATE KEY-----"
_URL_WITH_PASSWORD = "postgresql://airflow:" + "pa55word@postgres/airflow"


@pytest.mark.parametrize(
    ("path", "text", "rule"),
    [
        ("include/config/environments/x.yaml", f"key: {_AWS_KEY}", "AWS access key id"),
        ("plugins/x.py", f'DEFAULT = "{_DATABRICKS}"', "Databricks token"),
        ("docs/notes.md", _PRIVATE_KEY, "private key"),
        ("airflow_settings.yaml", "      conn_password: s3cr3t-value-123", "literal value for conn_password"),
        ("docker/.env", "AIRFLOW_JWT_SECRET=Zx81kQ-real-looking-value", "literal value for AIRFLOW_JWT_SECRET"),
        ("docker/compose.yaml", "      POSTGRES_PASSWORD: hunter2hunter2", "literal value for POSTGRES_PASSWORD"),
        ("docker/compose.yaml", f"  X: {_URL_WITH_PASSWORD}", "credentials in a URL"),
        ("docker/Dockerfile", "ENV AIRFLOW__CORE__FERNET_KEY=abcdefghijkl", "literal value for AIRFLOW__CORE__FERNET_KEY"),
        ("plugins/x.py", 'password = "hunter2hunter2"', "literal value for password"),
        ("tests/x/test_y.py", f'KEY = "{_AWS_KEY}"', "AWS access key id"),  # tokens are found in tests too
    ],
)
def test_scanner_finds_planted_secrets(path, text, rule):
    findings = scan_text(path, text)
    assert [f.rule for f in findings] == [rule]
    assert all(text.split()[-1].strip('"') not in str(f) for f in findings), "a finding must not print the value"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("airflow_settings.yaml", "      conn_password: replace-with-a-token"),
        ("docker/.env.example", "AIRFLOW_DB_PASSWORD=change-me-airflow-db-password"),
        ("docker/compose.yaml", "  AIRFLOW__CORE__FERNET_KEY: ${AIRFLOW_FERNET_KEY:?set AIRFLOW_FERNET_KEY}"),
        ("docker/compose.yaml", "  X: postgresql+psycopg2://airflow:${AIRFLOW_DB_PASSWORD:?set it}@postgres:5432/airflow"),
        ("docker/compose.yaml", "  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE: /opt/airflow/run/p.json"),
        ("docker/postgres/init.sh", "CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';"),
        ("plugins/x.py", 'os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password'),
        ("plugins/x.py", "def login(password: str, token: str | None = None):"),
        ("tests/x/test_y.py", '{"login": "svc", "password": "dummy-for-a-mock"}'),
    ],
)
def test_scanner_allows_placeholders_and_references(path, text):
    assert scan_text(path, text) == []
