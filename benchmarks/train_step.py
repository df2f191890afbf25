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

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BenchmarkResult,
    Case,
    base_parser,
    measure_alternating,
    paired_ratio,
    parse_args,
    set_threads,
)
from _tiny_stack import build_configured_stack, build_random_tiny_stack  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
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
    args = parse_args(parser, argv)
    batch = args.batch or (8 if args.quick else 32)
    epoch_rows = args.epoch_rows or (32 if args.quick else 128)
    set_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        if args.config:
            stack = build_configured_stack(args.config, args.overrides)
        else:
            stack = build_random_tiny_stack(tmp / "stack", args.overrides, datastore_size=2000)
        model = stack.model.to(args.device).train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else None

        # Clips on disk (the no-cache path decodes them) and their captions / retrieved captions.
        num_clips = -(-epoch_rows // args.captions_per_clip)
        paths = write_wavs(tmp / "wav", num_clips, args.seconds)
        rows = [
            {
                "clip": c,
                "caption": stack.captions[(c * 7 + j) % len(stack.captions)],
                "retrieved": stack.captions[(c * 11 + j) % len(stack.captions) :][:3],
            }
            for c in range(num_clips)
            for j in range(args.captions_per_clip)
        ][:epoch_rows]

        started = time.perf_counter()
        cache_tokens, cache_mask, grid = build_feature_cache(model, paths, args.seconds)
        cache_build_s = time.perf_counter() - started

        def cached_batch(chunk: list[dict]) -> dict:
            clips = [r["clip"] for r in chunk]
            return {
                "encoder_tokens": torch.from_numpy(cache_tokens[clips]),
                "encoder_mask": torch.from_numpy(cache_mask[clips]),
                "encoder_grid": grid,
                "captions": [r["caption"] for r in chunk],
                "retrieved": [r["retrieved"] for r in chunk],
            }

        def audio_batch(chunk: list[dict]) -> dict:
            from distillcaps.data.audio import crop_or_pad, load_audio

            waves = [
                crop_or_pad(load_audio(paths[r["clip"]]), int(args.seconds * 16000), random_crop=True)
                for r in chunk
            ]
            return {
                "audio": torch.stack([w for w, _ in waves]),
                "audio_lengths": torch.tensor([n for _, n in waves]),
                "captions": [r["caption"] for r in chunk],
                "retrieved": [r["retrieved"] for r in chunk],
            }

        def step(loss_fn, batch_in: dict) -> None:
            loss = loss_fn(batch_in)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        one_batch = cached_batch((rows * (1 + batch // len(rows)))[:batch])
        loss_fns = {
            "baseline": lambda b: model.compute_loss(b, mode="baseline").loss,
            "rag": lambda b: model.compute_loss(b, mode="rag").loss,
            "distill_two_passes": lambda b: model.compute_loss(b, mode="distill").loss,
            "distill_one_batch": lambda b: distill_loss_one_padded_batch(model, b),
        }
        params = {"batch": batch, "source": "cached encoder features"}
        steps = {name: Case(f"{name}/b{batch}", "steps", 1, params) for name in loss_fns}
        measure_alternating(
            [(steps[name], (lambda fn=fn: step(fn, one_batch))) for name, fn in loss_fns.items()],
            args.repeats,
            args.warmup,
            sync,
        )

        def epoch(make_batch) -> None:
            for start in range(0, len(rows), batch):
                step(loss_fns["distill_two_passes"], make_batch(rows[start : start + batch]))

        epoch_params = {"rows": len(rows), "batch": batch, "clips": num_clips, "mode": "distill"}
        no_cache = Case("epoch_no_cache", "rows", len(rows), {**epoch_params, "features": "decode + encoder"})
        cache = Case("epoch_cache", "rows", len(rows), {**epoch_params, "features": "precomputed"})
        measure_alternating(
            [(no_cache, lambda: epoch(audio_batch)), (cache, lambda: epoch(cached_batch))],
            args.repeats,
            args.warmup,
            sync,
        )
        cache.extra["cache_build_s_once"] = round(cache_build_s, 3)
        with torch.no_grad():
            model.eval()  # dropout off: both ways must give the same loss
            two = float(model.compute_loss(one_batch, mode="distill").loss)
            one = float(distill_loss_one_padded_batch(model, one_batch))
            model.train()

        result = BenchmarkResult(
            name="train_step",
            args=args,
            settings={
                "model": stack.description,
                "config_overrides": args.overrides,
                "batch": batch,
                "epoch_rows": len(rows),
                "clip_seconds": args.seconds,
                "optimizer": "AdamW over the trainable parameters",
                "trainable_parameters": sum(p.numel() for p in trainable),
                "branch_execution_in_model": "two passes: DistillCapsModel.compute_loss",
                "one_padded_batch_loss_minus_two_pass_loss_eval_mode": one - two,
            },
            versions=("torch", "transformers", "peft", "soundfile", "torchaudio"),
        )
        for case in [*steps.values(), no_cache, cache]:
            result.add(case)
        base = steps["baseline"]
        full = steps["distill_two_passes"]
        result.ratios += [
            paired_ratio("baseline / distill_two_passes (steps/s): cost of a DistillCaps step", base, full),
            paired_ratio("baseline / rag (steps/s)", base, steps["rag"]),
            paired_ratio(
                "distill_one_batch / distill_two_passes (steps/s)", steps["distill_one_batch"], full
            ),
            paired_ratio("epoch_cache / epoch_no_cache (rows/s)", cache, no_cache),
        ]
        r = {x["name"].split(" (")[0]: x["median"] for x in result.ratios}
        result.findings += [
            f"a DistillCaps (distill) step costs {r['baseline / distill_two_passes']:.2f}x a baseline step "
            f"at batch {batch}; a RAG-only step {r['baseline / rag']:.2f}x",
            f"one padded batch runs {r['distill_one_batch / distill_two_passes']:.2f}x the steps/s of two "
            f"passes (same loss to {abs(one - two):.1e} in eval mode)",
            f"the frozen-feature cache makes an epoch {r['epoch_cache / epoch_no_cache']:.2f}x faster "
            f"(one-off build {cache_build_s:.1f} s for {num_clips} clips)",
        ]
        result.write()
    return 0


def distill_loss_one_padded_batch(model, batch: dict) -> torch.Tensor:
    """The distill objective with both branches in ONE LLM call: prompts right-padded to one width.

    Mirrors DistillCapsModel.compute_loss(mode="distill") term by term; only the execution differs.
    Right padding keeps every real token's position, so the logits match the two-pass ones.
    """
    from distillcaps.losses import caption_cross_entropy, dda_loss

    train_cfg = model.cfg.train
    captions = batch["captions"]
    audio, audio_mask = model.audio_tokens(batch)
    student = model.prompts.build(audio, audio_mask, captions=captions)
    teacher = model.prompts.build(
        audio, audio_mask, captions=captions, retrieved=model.top_k(batch, len(captions))
    )
    width = max(student.inputs_embeds.shape[1], teacher.inputs_embeds.shape[1])

    def pad(x: torch.Tensor) -> torch.Tensor:  # (B, L, ...) -> (B, width, ...), zeros on the right
        spec = [0, 0] * (x.dim() - 2) + [0, width - x.shape[1]]
        return torch.nn.functional.pad(x, spec)

    embeds = torch.cat([pad(student.inputs_embeds), pad(teacher.inputs_embeds)])  # (2B, width, H)
    attention = torch.cat([pad(student.attention_mask), pad(teacher.attention_mask)])  # (2B, width)
    positions = torch.cat([student.caption_positions, teacher.caption_positions])  # (2B, C)
    base = model.llm.get_base_model()
    hidden = base.get_decoder()(
        inputs_embeds=embeds, attention_mask=attention, use_cache=False
    ).last_hidden_state
    index = positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    student_logits, teacher_logits = base.get_output_embeddings()(hidden.gather(1, index)).split(
        len(captions)
    )
    auto = caption_cross_entropy(student_logits, student.caption_targets, student.caption_mask)
    rag = caption_cross_entropy(teacher_logits, teacher.caption_targets, teacher.caption_mask)
    dda = dda_loss(student_logits, teacher_logits, student.caption_mask, train_cfg.temperature)
    return train_cfg.w_auto * auto + train_cfg.w_rag * rag + train_cfg.w_dda * dda


def write_wavs(folder: Path, count: int, seconds: float) -> list[Path]:
    import soundfile as sf

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
def build_feature_cache(model, paths: list[Path], seconds: float):
    """What the training room's feature cache stores: encode_frozen over every clip, once."""
    from distillcaps.data.audio import crop_or_pad, load_audio

    tokens, masks, grid = [], [], None
    for path in paths:
        wave, n = crop_or_pad(load_audio(path), int(seconds * 16000), random_crop=False)
        t, m, grid = model.encode_frozen(wave[None], torch.tensor([n]))
        tokens.append(t[0].cpu().numpy())
        masks.append(m[0].cpu().numpy())
    return np.stack(tokens), np.stack(masks), grid


if __name__ == "__main__":
    raise SystemExit(main())
