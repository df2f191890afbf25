"""Open an experiment's runs in the MLflow UI as a user would, check what the page shows, save a PNG.

    python scripts/mlflow_ui_screenshot.py --store sqlite:///$PWD/runs/mlflow.db --output runs.png

Starts ``mlflow server`` on the store (127.0.0.1, a free port), opens the experiment's runs page in
headless Chromium with the row runs filtered in and their ``cider_d`` column shown, and exits 1 with
the reason when the page is not the runs table (MLflow 3 opens an experiment on its GenAI overview
unless the UI is switched to "Model training", which the ``workflowType`` query parameter does).
The docs' screenshot comes from a quick ablation's store; the test runs it on a stand-in store.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from distillcaps.tracking.ui import runs_page_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
ROW_FILTER = "tags.`distillcaps.kind` = 'row'"  # the experiment's row runs (one evaluation each)
SHOWN_METRICS = ("cider_d", "distinct_captions")  # one key per quantity: what a row run carries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(store: str, port: int, log: Path) -> subprocess.Popen:
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "server", "--backend-store-uri", store, "--host", "127.0.0.1"]
    with log.open("w") as out:
        proc = subprocess.Popen([*command, "--port", str(port), "--workers", "1"], stdout=out, stderr=out)
    deadline = time.monotonic() + 180  # the first start migrates the store's schema
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"mlflow server did not answer /health within 180 s; see {log}")


def experiment_id_of(store: str, name: str) -> str:
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(store).get_experiment_by_name(name)
    if experiment is None:
        raise SystemExit(f"no experiment named {name!r} in {store}")
    return experiment.experiment_id


def capture(url: str, output: Path) -> str:
    """Open the runs page, expand the parent run, show the metric columns; -> the page's text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 640})
            page.goto(url)
            page.wait_for_selector("text=matching runs", timeout=120_000)
            assistant = page.locator('[aria-label="Close"]')  # MLflow's assistant side panel
            if assistant.count():
                assistant.first.click()
            page.locator('button[data-component-id*="runnamecellrenderer"]').first.click()  # expand
            page.locator('[data-testid="column-selection-dropdown"]').first.click()
            for name in SHOWN_METRICS:
                page.get_by_text(name, exact=True).first.click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(1500)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output))
            return page.inner_text("body")
        finally:
            browser.close()


def check_page(text: str) -> list[str]:
    """What is wrong with the page a user sees; [] when it is the runs table with our columns."""
    problems = []
    if "Token Usage" in text:
        problems.append("the page is MLflow's GenAI overview, not the runs table")
    if "matching runs" not in text:
        problems.append("no runs table on the page")
    problems += [f"no {name!r} column" for name in SHOWN_METRICS if name not in text]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="MLflow backend store URI (sqlite:///...)")
    parser.add_argument("--experiment", default="distillcaps", help="experiment name")
    parser.add_argument("--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: bash scripts/install-browser.sh", file=sys.stderr)
        return 2
    port = free_port()
    server = start_server(args.store, port, args.output.with_suffix(".server.log"))
    try:
        experiment_id = experiment_id_of(args.store, args.experiment)
        url = runs_page_url(experiment_id, f"http://127.0.0.1:{port}", ROW_FILTER)
        text = capture(url, args.output)
    finally:
        server.terminate()
        server.wait(timeout=30)
    problems = check_page(text)
    for problem in problems:
        print(f"mlflow ui: {problem}", file=sys.stderr)
    print(f"{'FAILED' if problems else 'ok'}: {url} -> {args.output}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
