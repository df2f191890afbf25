"""Figure 5: wall time to caption a whole test split, student without vs with retrieval.

One model, one batch size, one machine. Both sides run the full model (audio encoder, adapter,
Q-Former, LLM decoding); the retrieval side also embeds the audio with CLAP, searches the index and
decodes from the longer teacher prompt. Audio is decoded once beforehand (file I/O is the same for
both and would only add noise). Building the datastore/index is a one-time deployment cost, timed
separately. Repeats alternate the order (A B, B A, ...) so warm-up and drift hit both sides alike;
one untimed warm-up batch runs first for each side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillcaps.config import Config
from distillcaps.experiments import paper_numbers as paper
from distillcaps.experiments.captioning import caption_split, load_split
from distillcaps.experiments.cli_args import config_source, data_notes, output_dir, parse_seeds
from distillcaps.experiments.outputs import finish_experiment
from distillcaps.experiments.plots import plot_inference_time
from distillcaps.experiments.results import ExperimentResults, RowResult, RunFailure
from distillcaps.experiments.runner import TrainFn, default_train, one_line
from distillcaps.experiments.tracking import KIND_TAG, ExperimentTracker

SCRIPT = "inference_time"
SIDES = ("without_retrieval", "with_retrieval")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="student checkpoint (default: train one first)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per side (default 5; --quick 2)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="clips per batch (default eval.batch_size)"
    )


def alternating_order(repeats: int) -> list[tuple[int, str]]:
    """(repeat, side) in the order A B, B A, A B, ..."""
    order = []
    for r in range(repeats):
        sides = SIDES if r % 2 == 0 else SIDES[::-1]
        order += [(r, side) for side in sides]
    return order


def time_sides(
    caption_fn: Callable[[str], list[str]], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float]]:
    """Seconds per repeat for each side; caption_fn(side) captions the whole split once."""
    for side in SIDES:  # untimed warm-up (lazy allocations, caches)
        caption_fn(side)
    seconds: dict[str, list[float]] = {side: [0.0] * repeats for side in SIDES}
    for repeat, side in alternating_order(repeats):
        start = clock()
        caption_fn(side)
        seconds[side][repeat] = clock() - start
    return seconds


@dataclass
class Timing:
    """What one timing of both sides measured."""

    seconds: dict[str, list[float]]  # side -> seconds per repeat
    clips: int
    setup_seconds: float  # loading the datastore and index: a one-time deployment cost
    encoder_pass_shared: bool  # the encoder is the CLAP audio tower: one pass serves caption and query


def run_inference_time(args: argparse.Namespace, *, train_fn: TrainFn = default_train) -> int:
    source = config_source(args)
    cfg = source.load()
    seed = parse_seeds(args.seeds, args.quick)[0]
    repeats = args.repeats or (2 if args.quick else 5)
    batch_size = args.batch_size or cfg.eval.batch_size
    out = output_dir(args, SCRIPT, cfg)
    tracker = ExperimentTracker(cfg)
    parent_id = tracker.start_parent(SCRIPT, run_name=f"{SCRIPT} {time.strftime('%Y-%m-%d %H:%M:%S')}")
    results = new_results(cfg, batch_size, repeats, parent_id)
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    try:
        checkpoint = student_checkpoint(args, source, seed, parent_id, results, train_fn)
        timing = time_captioning(checkpoint, cfg, batch_size, repeats)
        seconds = timing.seconds
        record_timing(tracker, parent_id, results, timing, seed, batch_size)
    except Exception as err:
        traceback.print_exc()
        results.failures.append(RunFailure("timing", SCRIPT, seed, one_line(err)))
    ratio = results.extra.get("ratio_with_over_without")
    plot: Callable[[ExperimentResults, Path], Any] = lambda res, path: plot_inference_time(  # noqa: E731
        seconds, ratio, path, "Caption the test split"
    )
    finish_experiment(results, out, tracker, parent_id, plot=plot)
    return 0 if results.ok else 1


def new_results(cfg: Config, batch_size: int, repeats: int, parent_id: str) -> ExperimentResults:
    """The experiment's results, one row per side, before anything is measured."""
    import torch

    results = ExperimentResults(
        script=SCRIPT,
        title="Figure 5: time to caption the test split, without vs with retrieval",
        seeds=list(range(repeats)),
        metrics=["seconds"],
        notes=[
            *data_notes(cfg),
            f"Same student, batch size {batch_size}, {torch.get_num_threads()} torch threads; 'seeds' "
            "below are timed repeats (order alternates). Decoding greedy/beam as in the config.",
            "The paper times DistillCaps (no retrieval) against RAG-based LOAE (a different model); we time "
            "one model both ways, so the ratio isolates the cost of retrieval and the longer prompt.",
        ],
        parent_run_id=parent_id,
        scale=1.0,
        unit="s",
    )
    results.rows = [
        RowResult(side, {"Inference": side.replace("_", " ")}, rag=side == "with_retrieval") for side in SIDES
    ]
    return results


def student_checkpoint(
    args: argparse.Namespace, source, seed: int, parent_id: str, results: ExperimentResults, train_fn: TrainFn
) -> Path:
    """--checkpoint, or a student (train.mode=distill) trained first and recorded in ``results``."""
    if args.checkpoint:
        return Path(args.checkpoint)
    train_cfg = source.load("train.mode=distill", f"seed={seed}")
    trained = train_fn(
        train_cfg,
        run_name=f"{SCRIPT}/student/seed{seed}",
        parent_run_id=parent_id,
        tags={"script": SCRIPT, "training": "student", "seed": str(seed), KIND_TAG: "training"},
    )
    results.trainings.append({"key": "student", "seed": seed, "run_id": trained.run_id, "status": "ok"})
    return Path(trained.best_checkpoint)


def time_captioning(checkpoint: Path, cfg: Config, batch_size: int, repeats: int) -> Timing:
    """Caption ``cfg``'s test split with the checkpoint's student, both sides, ``repeats`` times each."""
    from distillcaps.standins import build_retriever, load_trained_model  # lazy: torch and transformers

    model = load_trained_model(checkpoint)
    model.eval()
    split = load_split(cfg, cfg.data.eval_subset)
    start = time.perf_counter()
    retriever = build_retriever(model.cfg)
    setup_seconds = time.perf_counter() - start
    top_k = model.cfg.retrieval.top_k

    def caption(side: str) -> list[str]:
        use = retriever if side == "with_retrieval" else None
        return caption_split(model, split, batch_size=batch_size, retriever=use, top_k=top_k)

    seconds = time_sides(caption, repeats)
    return Timing(seconds, len(split), setup_seconds, retriever.shares_encoder(model.encoder))


def record_timing(
    tracker: ExperimentTracker,
    parent_id: str,
    results: ExperimentResults,
    timing: Timing,
    seed: int,
    batch_size: int,
) -> None:
    """One child run per side (seconds per repeat as steps) and the ratios in ``results.extra``."""
    for row in results.rows:
        side = row.name
        run_id = tracker.start_child(
            parent_id, f"{SCRIPT}/{side}", {KIND_TAG: "row", "script": SCRIPT, "row": side, "seed": seed}
        )
        row.run_ids[seed] = run_id
        for repeat, value in enumerate(timing.seconds[side]):
            row.per_seed[repeat] = {"seconds": value}
            tracker.client.log_metric(run_id, "seconds", value, step=repeat)
        tracker.log_metrics(run_id, {"clips": timing.clips, "batch_size": batch_size})
        tracker.end(run_id, True)
    seconds = timing.seconds
    mean = {side: sum(v) / len(v) for side, v in seconds.items()}
    # per repeat (the two sides ran back to back), then the median: robust to a neighbour's burst
    paired = sorted(w / wo for w, wo in zip(seconds["with_retrieval"], seconds["without_retrieval"]))
    results.extra.update(
        {
            "clips": timing.clips,
            "batch_size": batch_size,
            "datastore_setup_seconds": round(timing.setup_seconds, 3),
            "ratio_with_over_without": round(mean["with_retrieval"] / mean["without_retrieval"], 3),
            "ratio_with_over_without_paired_median": round(statistics.median(paired), 3),
            "encoder_pass_shared": timing.encoder_pass_shared,
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "paper_ratio_clotho": round(paper.figure5_ratio("Clotho"), 2),
            "paper_ratio_audiocaps": round(paper.figure5_ratio("AudioCaps"), 2),
        }
    )
