"""Training step cost: a full DistillCaps step vs a baseline (student-only) step vs a RAG-only step;
the two ways to run the branches (two passes vs one padded batch); epoch time with vs without the
frozen-feature cache.

    python benchmarks/train_step.py            # batch 32 (the tiny preset's), 128-row epoch
    python benchmarks/train_step.py --quick    # batch 8, 32-row epoch

A step is ``compute_loss`` + backward + AdamW step on the trainable parameters (LoRA, adapter,
Q-Former, projector), the same as the training loop's. Sides, alternating:

  steps (from cached encoder features, the tiny preset's default):
    baseline            mode=baseline: student branch only
    rag                 mode=rag: teacher (retrieval-prompt) branch only
    distill_two_passes  mode=distill as DistillCapsModel runs it: student pass + teacher pass
    distill_one_batch   the measured alternative, implemented here: both prompts right-padded to
                        one width and run as one (2B)-row batch through the LLM, logits split
  epoch (``--epoch-rows`` rows, distill steps):
    epoch_no_cache      decode + resample + crop each wav, run the frozen encoder, step
    epoch_cache         look the encoder output up in a precomputed array, step
The cache's one-off build (decode + encoder over the clips) is timed once and reported.
Without ``--config`` the model is a randomly initialised tiny DistillCapsModel (see settings.model).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    base_parser,
    build_configured_stack,
    build_random_tiny_stack,
    measure_alternating,
    paired_ratio,
    parse_args,
    set_threads,
)
from distillcaps.data.audio import load_audio, pad_waveforms
from distillcaps.data.batches import ModelBatch
from distillcaps.losses import caption_cross_entropy, dda_loss
from distillcaps.model.prompts import PromptBatch

SAMPLE_RATE = 16_000  # the model's (load_audio's default)


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__file__, __doc__)
    parser.add_argument(
        "--config", default="", help="build the configured stack instead of a random tiny one"
    )
    parser.add_argument("--batch", type=int, default=0, help="rows per step (0: 32, or 8 with --quick)")
    parser.add_argument(
        "--epoch-rows", type=int, default=0, help="rows per epoch (0: 128, or 32 with --quick)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (the synthetic set: 5 s)")
    parser.add_argument("--captions-per-clip", type=int, default=5, help="Clotho: 5 rows per clip")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(arg_parser(), argv)
    args.batch = args.batch or (8 if args.quick else 32)
    epoch_rows = args.epoch_rows or (32 if args.quick else 128)
    set_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        if args.config:
            stack = build_configured_stack(args.config, args.overrides)
        else:
            stack = build_random_tiny_stack(tmp / "stack", args.overrides, datastore_size=2000)
        trainer = Trainer(stack.model.to(args.device).train(), args.device)
        # Clips on disk (the no-cache path decodes them) and their captions / retrieved captions.
        num_clips = -(-epoch_rows // args.captions_per_clip)
        data = EpochData(write_wavs(tmp / "wav", num_clips, args.seconds), args.seconds)
        data.rows = epoch_rows_of(stack.captions, num_clips, args.captions_per_clip)[:epoch_rows]
        started = time.perf_counter()
        data.cache = build_feature_cache(trainer.model, data.paths, data.num_samples)
        cache_build_s = time.perf_counter() - started

        one_batch = data.cached_batch((data.rows * (1 + args.batch // len(data.rows)))[: args.batch])
        steps = measure_steps(trainer, one_batch, args)
        epochs = measure_epochs(trainer, data, args)
        epochs[1].extra["cache_build_s_once"] = round(cache_build_s, 3)
        with torch.no_grad():
            trainer.model.eval()  # dropout off: both ways must give the same loss
            two = float(trainer.model.compute_loss(one_batch, mode="distill").loss)
            one = float(distill_loss_one_padded_batch(trainer.model, one_batch))
            trainer.model.train()

        result = BenchmarkResult(
            name="train_step",
            args=args,
            settings={
                "model": stack.description,
                "config_overrides": args.overrides,
                "batch": args.batch,
                "epoch_rows": len(data.rows),
                "clip_seconds": args.seconds,
                "optimizer": "AdamW over the trainable parameters",
                "trainable_parameters": sum(p.numel() for p in trainer.trainable),
                "branch_execution_in_model": "two passes: DistillCapsModel.compute_loss",
                "one_padded_batch_loss_minus_two_pass_loss_eval_mode": one - two,
            },
            versions=("torch", "transformers", "peft", "soundfile", "torchaudio"),
        )
        add_ratios_and_findings(result, steps, epochs, abs(one - two), cache_build_s, num_clips)
        result.write()
    return 0


class Trainer:
    """The training loop's step: ``compute_loss`` + backward + AdamW on the trainable parameters."""

    def __init__(self, model, device: str) -> None:
        self.model = model
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=1e-4)
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else None
        self.losses: dict[str, Callable[[ModelBatch], torch.Tensor]] = {
            "baseline": lambda b: model.compute_loss(b, mode="baseline").loss,
            "rag": lambda b: model.compute_loss(b, mode="rag").loss,
            "distill_two_passes": lambda b: model.compute_loss(b, mode="distill").loss,
            "distill_one_batch": lambda b: distill_loss_one_padded_batch(model, b),
        }

    def step(self, loss_name: str, batch: ModelBatch) -> None:
        loss = self.losses[loss_name](batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


@dataclass
class EpochData:
    """An epoch's rows ({clip, caption, retrieved}), their wav files and the clips' cached features."""

    paths: list[Path]
    seconds: float
    rows: list[dict[str, Any]] | None = None
    cache: tuple[np.ndarray, np.ndarray, tuple[int, int]] | None = None  # tokens, mask, grid

    @property
    def num_samples(self) -> int:
        return int(self.seconds * SAMPLE_RATE)

    def cached_batch(self, chunk: list[dict[str, Any]]) -> ModelBatch:
        """The encoder output looked up in the precomputed arrays (the feature cache's path)."""
        tokens, mask, grid = self.cache
        clips = [r["clip"] for r in chunk]
        return ModelBatch.from_features(
            torch.from_numpy(tokens[clips]),  # (B, N, D)
            torch.from_numpy(mask[clips]),  # (B, N)
            grid,
            captions=[r["caption"] for r in chunk],
            retrieved=[r["retrieved"] for r in chunk],
        )

    def audio_batch(self, chunk: list[dict[str, Any]]) -> ModelBatch:
        """Each row's wav decoded, resampled and randomly cropped (training without the cache)."""
        waves = [load_audio(self.paths[r["clip"]]) for r in chunk]
        audio, lengths = pad_waveforms(waves, self.num_samples, random_crop=True)  # (B, S), (B,)
        return ModelBatch.from_waveforms(
            audio, lengths, captions=[r["caption"] for r in chunk], retrieved=[r["retrieved"] for r in chunk]
        )


def epoch_rows_of(captions: list[str], num_clips: int, per_clip: int) -> list[dict[str, Any]]:
    """``per_clip`` rows per clip, each a caption of the store and 3 retrieved ones."""
    return [
        {
            "clip": c,
            "caption": captions[(c * 7 + j) % len(captions)],
            "retrieved": captions[(c * 11 + j) % len(captions) :][:3],
        }
        for c in range(num_clips)
        for j in range(per_clip)
    ]


def measure_steps(trainer: Trainer, one_batch: ModelBatch, args: Any) -> dict[str, Case]:
    """One step of each loss on the same cached batch, side by side."""
    params = {"batch": args.batch, "source": "cached encoder features"}
    steps = {name: Case(f"{name}/b{args.batch}", "steps", 1, params) for name in trainer.losses}
    measure_alternating(
        [(steps[name], (lambda name=name: trainer.step(name, one_batch))) for name in trainer.losses],
        args.repeats,
        args.warmup,
        trainer.sync,
    )
    return steps


def measure_epochs(trainer: Trainer, data: EpochData, args: Any) -> tuple[Case, Case]:
    """A distill epoch from the wav files against one from the cached features; -> (no cache, cache)."""

    def epoch(make_batch: Callable[[list[dict[str, Any]]], ModelBatch]) -> None:
        for start in range(0, len(data.rows), args.batch):
            trainer.step("distill_two_passes", make_batch(data.rows[start : start + args.batch]))

    rows = len(data.rows)
    params = {"rows": rows, "batch": args.batch, "clips": len(data.paths), "mode": "distill"}
    no_cache = Case("epoch_no_cache", "rows", rows, {**params, "features": "decode + encoder"})
    cache = Case("epoch_cache", "rows", rows, {**params, "features": "precomputed"})
    measure_alternating(
        [(no_cache, lambda: epoch(data.audio_batch)), (cache, lambda: epoch(data.cached_batch))],
        args.repeats,
        args.warmup,
        trainer.sync,
    )
    return no_cache, cache


def add_ratios_and_findings(
    result: BenchmarkResult,
    steps: dict[str, Case],
    epochs: tuple[Case, Case],
    loss_gap: float,
    cache_build_s: float,
    num_clips: int,
) -> None:
    no_cache, cache = epochs
    for case in [*steps.values(), no_cache, cache]:
        result.add(case)
    base, full = steps["baseline"], steps["distill_two_passes"]
    result.ratios += [
        paired_ratio("baseline / distill_two_passes (steps/s): cost of a DistillCaps step", base, full),
        paired_ratio("baseline / rag (steps/s)", base, steps["rag"]),
        paired_ratio("distill_one_batch / distill_two_passes (steps/s)", steps["distill_one_batch"], full),
        paired_ratio("epoch_cache / epoch_no_cache (rows/s)", cache, no_cache),
    ]
    r = {x["name"].split(" (")[0]: x["median"] for x in result.ratios}
    batch = result.settings["batch"]
    result.findings += [
        f"a DistillCaps (distill) step costs {r['baseline / distill_two_passes']:.2f}x a baseline step "
        f"at batch {batch}; a RAG-only step {r['baseline / rag']:.2f}x",
        f"one padded batch runs {r['distill_one_batch / distill_two_passes']:.2f}x the steps/s of two "
        f"passes (same loss to {loss_gap:.1e} in eval mode)",
        f"the frozen-feature cache makes an epoch {r['epoch_cache / epoch_no_cache']:.2f}x faster "
        f"(one-off build {cache_build_s:.1f} s for {num_clips} clips)",
    ]


def distill_loss_one_padded_batch(model, batch: ModelBatch) -> torch.Tensor:
    """The distill objective with both branches in ONE LLM call: prompts right-padded to one width.

    Mirrors DistillCapsModel.compute_loss(mode="distill") term by term; only the execution differs.
    Right padding keeps every real token's position, so the logits match the two-pass ones.
    """
    train_cfg = model.cfg.train
    captions = batch.captions
    audio, audio_mask = model.audio_tokens(batch)
    student = model.prompts.build(audio, audio_mask, captions=captions)
    teacher = model.prompts.build(audio, audio_mask, captions=captions, retrieved=model.top_k(batch))
    width = max(student.inputs_embeds.shape[1], teacher.inputs_embeds.shape[1])

    def pad(x: torch.Tensor) -> torch.Tensor:  # (B, L, ...) -> (B, width, ...), zeros on the right
        spec = [0, 0] * (x.dim() - 2) + [0, width - x.shape[1]]
        return torch.nn.functional.pad(x, spec)

    both = PromptBatch(
        inputs_embeds=torch.cat([pad(student.inputs_embeds), pad(teacher.inputs_embeds)]),  # (2B, width, H)
        attention_mask=torch.cat([pad(student.attention_mask), pad(teacher.attention_mask)]),  # (2B, width)
        caption_positions=torch.cat([student.caption_positions, teacher.caption_positions]),  # (2B, C)
    )
    student_logits, teacher_logits = model.caption_logits(both).split(len(captions))
    auto = caption_cross_entropy(student_logits, student.caption_targets, student.caption_mask)
    rag = caption_cross_entropy(teacher_logits, teacher.caption_targets, teacher.caption_mask)
    dda = dda_loss(student_logits, teacher_logits, student.caption_mask, train_cfg.temperature)
    return train_cfg.w_auto * auto + train_cfg.w_rag * rag + train_cfg.w_dda * dda


def write_wavs(folder: Path, count: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:04d}.wav"
        sf.write(
            path,
            (0.1 * rng.standard_normal(int(44_100 * seconds))).astype(np.float32),
            44_100,
            subtype="PCM_16",
        )
        paths.append(path)
    return paths


@torch.no_grad()
def build_feature_cache(model, paths: list[Path], num_samples: int):
    """What the training room's feature cache stores: encode_frozen over every clip, once."""
    tokens, masks, grid = [], [], None
    for path in paths:
        wave, n = pad_waveforms([load_audio(path)], num_samples)  # (1, S), (1,)
        t, m, grid = model.encode_frozen(wave, n)
        tokens.append(t[0].cpu().numpy())
        masks.append(m[0].cpu().numpy())
    return np.stack(tokens), np.stack(masks), grid


if __name__ == "__main__":
    raise SystemExit(main())
