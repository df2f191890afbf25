"""Markdown tables of the latest results (``benchmarks/results/*.json``), for docs/benchmarks.md.

    python benchmarks/summarize.py                 # print the tables
    python benchmarks/summarize.py --results DIR   # from another results folder
    python benchmarks/summarize.py --write-docs    # replace the generated part of docs/benchmarks.md

Every figure in the output comes from a JSON file, with the command that produced it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

DOCS = REPO_ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- BEGIN GENERATED: python benchmarks/summarize.py -->"
END = "<!-- END GENERATED -->"

ORDER = [
    "retrieval_index",
    "audio_frontend",
    "inference_speedup",
    "inference_limits",
    "train_step",
    "data_pipeline",
    "precompute_engines",
    "serve_batching",
]
# result folders beside results/ itself, and what their heading says
FOLDERS = {
    "full": "",
    "smol": "the smol preset, SmolLM2-135M",
    "trained": "a trained tiny student on its eval split",
}
EXTRA_KEYS = (
    "recall_at_10",
    "latency_ms_per_clip",
    "p50_ms",
    "p99_ms",
    "ingress_p50_ms",
    "build_s",
    "cache_build_s_once",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results",
        type=Path,
        nargs="+",
        default=[RESULTS_DIR, *(RESULTS_DIR / name for name in FOLDERS)],
        help="result folders (default: results/ and its full/, smol/, trained/)",
    )
    parser.add_argument("--write-docs", action="store_true", help=f"write the tables into {DOCS.name}")
    args = parser.parse_args(argv)
    sections = []
    for folder in args.results:
        files = {p.stem: p for p in sorted(Path(folder).glob("*.json"))}
        names = [n for n in ORDER if n in files] + [n for n in files if n not in ORDER]
        for name in names:
            data = json.loads(files[name].read_text())
            if "cases" not in data:  # e.g. serve_load.json (the serving room's own format)
                continue
            sections.append(section(data, FOLDERS.get(Path(folder).name, "")))
    text = "\n".join(sections)
    if args.write_docs:
        page = DOCS.read_text()
        if BEGIN not in page or END not in page:
            raise SystemExit(f"{DOCS}: the markers {BEGIN!r} and {END!r} are missing")
        head, rest = page.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        DOCS.write_text(f"{head}{BEGIN}\n\n{text}\n{END}{tail}")
        print(f"wrote {len(sections)} sections into {DOCS}")
    else:
        print(text)
    return 0


def section(data: dict, note: str = "") -> str:
    m = data["machine"]
    load = m.get("load_average_1_5_15") or []
    lines = [
        f"### {data['benchmark']}{'' if data['quick'] else ' (full size)'}{f': {note}' if note else ''}",
        "",
        # the machine and the command, not the date: a figure holds for what ran, not for when
        f"`{data['command']}` — {m.get('cpu_count')} cores ({m.get('cpu_model')}), "
        f"GPU: {m['gpu']['name'] if m.get('gpu') else 'none'}, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in load)}; {data['repeats']} repetitions after "
        f"{data['warmup']} warm-up, {data['threads']} thread(s).",
        "",
    ]
    if data["ratios"]:
        lines += ["| ratio (side by side) | median (wall) | median (CPU s) |", "|---|---|---|"]
        for r in data["ratios"]:
            cpu = r.get("median_cpu")
            lines.append(f"| {r['name']} | {r['median']:.2f} | {'-' if cpu is None else f'{cpu:.2f}'} |")
        lines.append("")
    lines += ["| case | median rate (wall) | per CPU-s | details |", "|---|---|---|---|"]
    for c in data["cases"]:
        extra = c.get("extra", {})
        details = ", ".join(f"{k}={extra[k]}" for k in EXTRA_KEYS if extra.get(k) is not None)
        per_cpu = c.get("median_rate_per_cpu_s")
        lines.append(
            f"| {c['name']} | {c['median_rate_per_s']:.3g} {c['unit']}/s | "
            f"{'-' if per_cpu is None else f'{per_cpu:.3g}'} | {details} |"
        )
    if data["findings"]:
        lines += [""] + [f"- {f}" for f in data["findings"]]
    if data["skipped"]:
        lines += [""] + [f"- skipped {s['what']}: {s['why']}" for s in data["skipped"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
