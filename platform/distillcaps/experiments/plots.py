"""Bar charts of an experiment's results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from distillcaps.experiments.results import METRIC_LABELS, ExperimentResults


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use: the experiment modules that
    import this one also run in every sweep trial's process, which draws nothing (~1 s saved there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_results(results: ExperimentResults, path: Path) -> Path:
    """One panel per metric, one bar per row (mean over seeds, error bar = std when defined)."""
    metrics = [m for m in results.metrics if any(m in r.summary().mean for r in results.rows)]
    metrics = metrics or results.metrics[:1]
    cols = min(4, len(metrics))
    rows_n = (len(metrics) + cols - 1) // cols
    plt = pyplot()
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.6 * rows_n), squeeze=False)
    names = [r.name for r in results.rows]
    for ax, metric in zip(axes.flat, metrics):
        means, errs = [], []
        for r in results.rows:
            s = r.summary()
            means.append(s.mean.get(metric, float("nan")) * results.scale)
            std = s.std.get(metric)
            errs.append(0.0 if std is None else std * results.scale)
        ax.bar(range(len(names)), means, yerr=errs, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.set_ylabel(results.unit)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(results.title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_inference_time(seconds: dict[str, list[float]], ratio: float | None, path: Path, title: str) -> Path:
    """Two bars (mean wall time, error bar = std over repeats) and the ratio in the title."""
    names = list(seconds)
    means = [sum(v) / len(v) if v else float("nan") for v in seconds.values()]
    errs = []
    for v, mean in zip(seconds.values(), means):
        errs.append((sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.bar(names, means, yerr=errs, capsize=4, color=["tab:green", "tab:orange"][: len(names)])
    ax.set_ylabel("seconds to caption the split")
    ratio_text = "n/a" if ratio is None else f"{ratio:.2f}×"
    ax.set_title(f"{title}\nwith/without retrieval: {ratio_text}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
