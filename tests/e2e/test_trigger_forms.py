"""Every DAG's Trigger form works in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) logs into the Airflow UI on loopback as the generated admin, opens each DAG's Trigger form, submits
the defaults (filling only the fields that are deliberately required, such as a rollback's reason), and the
run's conf is checked over the REST API. "Unpause on trigger" is unticked, so the runs are created but nothing
runs (the DAGs stay paused); the runs are deleted afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_DIR_ENV = "MLOPS_SCREENSHOT_DIR"  # where the churn forms' screenshots go (default: the test's tmp dir)
# Params a person must fill by design (no default that would be right): what the test types into them
REQUIRED = {
    "rollback_model": {"reason": "browser test: rollback form"},
    "approve_model": {"version": 1, "reason": "browser test: approval form"},
}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("MLOPS_REQUIRE_BROWSER"):  # CI (.ci/run) installs it: a skip there would hide the test
            pytest.fail(f"{CHROMIUM} is not installed (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def ui(browser, airflow_stack):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{airflow_stack.base_url}/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", airflow_stack.admin_password())
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    yield page
    page.close()


def _dag_ids(client) -> list[str]:
    dags = client._request("GET", "/api/v2/dags?limit=200")["dags"]
    return sorted(d["dag_id"] for d in dags)


def _defaults(client, dag_id: str) -> dict:
    params = client._request("GET", f"/api/v2/dags/{dag_id}/details")["params"] or {}
    return {name: spec.get("value") for name, spec in params.items()}


def _submit(page, base_url: str, dag_id: str, fill: dict, shot: Path | None) -> None:
    page.goto(f"{base_url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").first.wait_for(timeout=30_000)
    unpause = dialog.get_by_role("checkbox")
    if unpause.count() and unpause.first.is_checked():
        dialog.get_by_text("Unpause", exact=False).first.click()  # the run is created, nothing runs
        assert not unpause.first.is_checked()
    for name, value in fill.items():  # the form names each Param's field element_<param>
        dialog.locator(f"[name='element_{name}']").first.fill(str(value))
    submit = dialog.get_by_role("button", name="Trigger")
    submit.wait_for(timeout=10_000)
    assert submit.is_enabled(), f"{dag_id}: Trigger stays disabled with the defaults"
    if shot is not None:
        page.screenshot(path=str(shot))
    submit.click()
    dialog.wait_for(state="hidden", timeout=30_000)


def test_every_trigger_form_submits_its_defaults(ui, airflow_stack, airflow_client, tmp_path):
    base = airflow_stack.base_url
    dag_ids = _dag_ids(airflow_client)
    assert len(dag_ids) >= 10, dag_ids
    screenshots = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    screenshots.mkdir(parents=True, exist_ok=True)
    checked = []
    for dag_id in dag_ids:
        stage = dag_id.split("__", 1)[-1]
        fill = REQUIRED.get(stage, {})
        expected = {**_defaults(airflow_client, dag_id), **fill}
        before = {r["dag_run_id"] for r in airflow_client.dag_runs(dag_id)}
        paused = airflow_client.get_dag(dag_id)["is_paused"]
        shot = screenshots / f"trigger_form_{dag_id}.png" if dag_id.startswith("churn__") else None
        _submit(ui, base, dag_id, fill, shot)
        new = [r for r in airflow_client.dag_runs(dag_id) if r["dag_run_id"] not in before]
        assert len(new) == 1, (dag_id, new)
        run = new[0]
        try:
            assert run["run_type"] == "manual" and run["triggering_user_name"] == "admin", run
            assert run["conf"] == expected, (dag_id, run["conf"], expected)
            assert airflow_client.get_dag(dag_id)["is_paused"] == paused, f"{dag_id}: the form changed is_paused"
        finally:
            # an unpaused DAG (another test on the shared stack unpaused it) starts the run at once: end it first
            airflow_client.delete_run(dag_id, run["dag_run_id"], end_running=True)
        checked.append(dag_id)
    assert set(checked) == set(dag_ids)
    assert (screenshots / "trigger_form_churn__rollback_model.png").stat().st_size > 10_000
