"""Where a user opens an experiment's runs in the MLflow UI.

MLflow 3's UI opens every experiment on its GenAI overview (traces, token usage) unless the UI is
switched to "Model training"; the ``workflowType`` query parameter does that switch, so the links we
print land on the runs table.
"""

from __future__ import annotations

from urllib.parse import urlencode

DEFAULT_UI = "http://127.0.0.1:5000"  # `mlflow ui`'s default address


def runs_page_url(experiment_id: str, base: str = DEFAULT_UI, search_filter: str = "") -> str:
    query = {"workflowType": "machine_learning", **({"searchFilter": search_filter} if search_filter else {})}
    return f"{base}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def ui_command(tracking_uri: str) -> str:
    """The command that serves ``tracking_uri``'s UI (a server URI is the UI already)."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri}"
