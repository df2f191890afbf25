"""The paper preset at the paper's sizes on one GPU: training-step time, tokens/s and peak memory of a
DistillCaps (distill) step, and captions/s without vs with retrieval, on randomly initialised weights.

    python benchmarks/paper_scale.py --scale paper --device cuda --steps 5 --workdir /tmp/ps   # GPU
    python benchmarks/paper_scale.py --scale tiny --device cpu --quick                         # seconds

Everything goes through the project's real classes and loaders, only the weights are random (speed
and memory do not depend on what weights learned):
  CED-base    CEDEncoder(dim 768, depth 12, heads 12) saved with torch.save(state_dict) and loaded by
              the "ced" encoder from model.encoder.checkpoint, as the released .pt is
  LLaMA-7B    LlamaForCausalLM(hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000)
              created directly in bf16 (on the GPU when there is one), save_pretrained (safetensors,
              ~13.5 GB) to --workdir, loaded by llm.name=hf from model.llm.path in bf16
  tokenizer   train_caption_tokenizer on synthetic captions, padded with unused tokens to the
              config's vocabulary (32,000) so the LM head and logits have LLaMA's width
  model       load_config("paper", overrides) + DistillCapsModel.build(cfg), moved to the device
Measured:
  train_distill   compute_loss(mode=distill) under bf16 autocast with gradient checkpointing +
                  backward + AdamW on the trainable parameters (LoRA, adapter, Q-Former,
                  projector), random 10-s clips, 1 target caption + 3 retrieved captions per row;
                  median step time after warm-up, tokens/s, peak GPU memory
  student         model.generate(rag=False)  } alternately, same batch, same decoding
  rag             model.generate(rag=True)   } (greedy or --num-beams, exactly --new-tokens tokens)
  student_merged  generate(rag=False) on a copy whose LoRA is merged into the base weights
                  (peft merge_adapter): what the unmerged adapters cost at inference
``--scale tiny`` shrinks every dimension (CED dim 64 depth 1, Llama hidden 64 x 2 layers, vocab =
tokenizer) so that the same path runs on a CPU in seconds; ``--scale paper`` refuses to run on a CPU.
"""

from __future__ import annotations

import argparse
import copy
import gc
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    base_parser,
    measure_alternating,
    paired_ratio,
    parse_args,
    set_threads,
    time_call,
)
from distillcaps.config import Config, load_config
from distillcaps.data.batches import ModelBatch
from distillcaps.model.config import GenerationConfig, LLMConfig
from distillcaps.model.distillcaps_model import DistillCapsModel
from distillcaps.model.encoders import CEDEncoder
from distillcaps.model.llm import tiny_llama
from distillcaps.model.tokenizer import train_caption_tokenizer


class Scale(NamedTuple):
    """Dimensions of one run; ``paper`` is CED-base + LLaMA-7B, ``tiny`` the same shapes shrunk."""

    ced_dim: int
    ced_depth: int
    ced_heads: int
    llm_hidden: int
    llm_layers: int
    llm_heads: int
    llm_intermediate: int
    llm_vocab: int  # 0: the tokenizer's own size
    qformer_dim: int
    qformer_heads: int
    tokenizer_vocab: int  # vocabulary cap of train_caption_tokenizer (word-level) on the synthetic captions


SCALES = {
    "paper": Scale(768, 12, 12, 4096, 32, 32, 11008, 32000, 768, 12, 2000),
    "tiny": Scale(64, 1, 1, 64, 2, 2, 128, 0, 32, 2, 400),
}

# Synthetic captions: retrieval context and targets only need to have caption-like lengths.
SUBJECTS = ["a dog", "a man", "a woman", "rain", "a car", "birds", "a crowd", "water", "a train", "wind"]
ACTIONS = ["barks", "talks", "sings", "falls", "passes by", "chirp", "cheers", "flows", "rumbles", "blows"]
PLACES = [
    "in the distance",
    "near a busy road",
    "on a metal roof",
    "in a quiet park",
    "while people talk",
    "over a wooden floor",
    "as a door closes",
    "with loud background noise",
]


def synthetic_captions(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}" for _ in range(count)]


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__file__, __doc__)
    parser.set_defaults(device="auto", repeats=0)
    parser.add_argument("--scale", choices=sorted(SCALES), default="paper", help="paper: CED-base + LLaMA-7B")
    parser.add_argument(
        "--steps", type=int, default=0, help="timed training steps = repetitions (0: 5, 2 quick)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=0, help="rows per step/generate call (0: 8, 2 quick)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (AudioCaps: 10 s)")
    parser.add_argument("--new-tokens", type=int, default=30, help="tokens decoded per caption (paper: 30)")
    parser.add_argument("--num-beams", type=int, default=1, help="1 greedy; the paper decodes with beams (4)")
    parser.add_argument("--top-k", type=int, default=3, help="retrieved captions per row (paper: 3)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the random checkpoints go (paper: ~14 GB free)"
    )
    parser.add_argument("--keep-workdir", action="store_true", help="do not delete the checkpoints")
    parser.add_argument("overrides", nargs="*", help="extra dotted config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(arg_parser(), argv)
    device = resolve_device(args.device)
    if device == "cpu" and args.scale == "paper":
        print(
            "paper_scale: --scale paper needs a CUDA GPU (LLaMA-7B in bf16 is 13.5 GB of weights; "
            "a training step on a CPU is not a benchmark). Use --device cuda on a GPU host, or "
            "--scale tiny to check the script on a CPU.",
            file=sys.stderr,
        )
        return 2
    args.device = device
    args.repeats = args.steps or args.repeats or (2 if args.quick else 5)
    batch = args.batch_size or (2 if args.quick else 8)
    scale = SCALES[args.scale]
    set_threads(args.threads)
    torch.manual_seed(0)

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="paper-scale-", dir=args.workdir))
    try:
        return run(args, scale, batch, workdir)
    finally:
        if args.keep_workdir:
            print(f"kept the random checkpoints in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"paper_scale: --device {requested} but torch.cuda.is_available() is False")
    return requested


def run(args, scale: Scale, batch: int, workdir: Path) -> int:
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    captions = synthetic_captions(4000)
    cfg, model, built = build_random_model(args, scale, captions, batch, workdir)
    autocast = torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16)
    rng = random.Random(1)
    num_samples = int(args.seconds * cfg.data.sample_rate)
    train_batch = ModelBatch.from_waveforms(
        (0.1 * torch.randn(batch, num_samples)).to(args.device),  # (B, S) random 10-s clips
        torch.full((batch,), num_samples, dtype=torch.long, device=args.device),
        captions=[rng.choice(captions) for _ in range(batch)],
        retrieved=[[rng.choice(captions) for _ in range(args.top_k)] for _ in range(batch)],
    )
    positions = llm_positions(model, train_batch)
    train_case, peak_train_gb = measure_training(model, cfg, train_batch, autocast, sync, args)
    median_step = train_case.median_s
    train_case.extra.update(
        {
            "median_step_s": median_step,
            "llm_positions_per_step": positions["per_step"],
            "tokens_per_s": positions["per_step"] / median_step,
            "caption_tokens_per_s": positions["caption_tokens"] / median_step,
            "peak_memory_gb": peak_train_gb,
        }
    )
    sides = measure_generation(model, train_batch, autocast, sync, args)
    settings = {
        "scale": args.scale,
        "dimensions": scale._asdict(),
        "device_name": torch.cuda.get_device_name(0) if sync else "cpu",
        "batch": batch,
        "clip_seconds": args.seconds,
        "top_k": args.top_k,
        "new_tokens": args.new_tokens,
        "num_beams": args.num_beams,
        "config_overrides": args.overrides,
        "train_mode": cfg.train.mode,
        "precision": cfg.train.precision,
        "gradient_checkpointing": cfg.train.gradient_checkpointing,
        "llm_dtype": cfg.model.llm.dtype,
        "llm_vocab": model.llm.get_input_embeddings().num_embeddings,
        "llm_checkpoint_gb": round(built["llm_bytes"] / 2**30, 3),
        "parameters": parameter_counts(model),
        "prompt_positions": positions,
        "build_s": built["build_s"],
        "peak_memory_gb": {
            "train": train_case.extra["peak_memory_gb"],
            "generate": sides[0].extra["peak_memory_gb"],  # two models held: + the merged copy
        },
        "weights": "random (speed and memory only; captions are meaningless)",
        "paper_speedups": {"clotho": 3.4, "audiocaps": 5.4},
    }
    write_result(args, settings, train_case, sides)
    return 0


def build_random_model(
    args: Any, scale: Scale, captions: list[str], batch: int, workdir: Path
) -> tuple[Config, DistillCapsModel, dict[str, Any]]:
    """Random CED and Llama checkpoints saved to ``workdir``, loaded by the paper preset's loaders;
    -> (cfg, model on the device, {"build_s": seconds per stage, "llm_bytes": weight bytes})."""
    build_s: dict[str, float] = {}
    build_s["ced_checkpoint"], ced_path = timed(lambda: save_random_ced(scale, workdir))
    build_s["llm_checkpoint"], (llm_path, llm_bytes) = timed(
        lambda: save_random_llama(scale, captions, workdir / "llama", args.device)
    )
    cfg = load_config(
        "paper",
        [
            f"run_dir={workdir / 'runs'}",
            f"model.encoder.checkpoint={ced_path}",
            f"model.encoder.dim={scale.ced_dim}",
            f"model.llm.path={llm_path}",
            f"model.qformer.dim={scale.qformer_dim}",
            f"model.qformer.num_heads={scale.qformer_heads}",
            f"data.max_seconds={args.seconds}",
            f"train.batch_size={batch}",
            *args.overrides,
        ],
    )
    build_s["model_build"], model = timed(lambda: DistillCapsModel.build(cfg).to(args.device))
    if cfg.train.gradient_checkpointing:  # as the training loop enables it
        model.llm.get_base_model().gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    return cfg, model, {"build_s": build_s, "llm_bytes": llm_bytes}


def measure_training(
    model: DistillCapsModel,
    cfg: Config,
    train_batch: ModelBatch,
    autocast: Any,
    sync: Callable[[], None] | None,
    args: Any,
) -> tuple[Case, float | None]:
    """Distill steps as the training loop runs them (bf16 autocast, AdamW on the trainable
    parameters); -> (their case, peak GPU memory in GB: None on a CPU). The optimizer's state is
    freed afterwards, before generation is measured."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)

    def train_step() -> None:
        model.train()
        with autocast:
            out = model.compute_loss(train_batch, mode="distill")
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    if sync:
        torch.cuda.reset_peak_memory_stats()
    batch = len(train_batch)
    step_params = {"batch": batch, "mode": "distill", "precision": "bf16", "gradient_checkpointing": True}
    case = Case(f"train_distill/b{batch}", "rows", batch, step_params)
    for _ in range(args.warmup):
        train_step()
    if sync:
        sync()
    for _ in range(args.repeats):
        case.record(*time_call(train_step, sync))
    peak_gb = round(torch.cuda.max_memory_allocated() / 2**30, 2) if sync else None
    optimizer.zero_grad(set_to_none=True)
    optimizer.state.clear()  # free the AdamW moments before generation is measured
    gc.collect()
    if sync:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return case, peak_gb


def measure_generation(
    model: DistillCapsModel, batch: ModelBatch, autocast: Any, sync: Callable[[], None] | None, args: Any
) -> tuple[Case, Case, Case]:
    """The student, the teacher prompt and the student with its LoRA merged, alternating; -> their cases."""
    generation = GenerationConfig(
        num_beams=args.num_beams, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens
    )
    rows = len(batch)
    gen_params = {"batch": rows, "new_tokens": args.new_tokens, "num_beams": args.num_beams}
    student = Case(f"student/b{rows}", "captions", rows, gen_params)
    rag = Case(f"rag/b{rows}", "captions", rows, gen_params)
    merged = Case(f"student_merged/b{rows}", "captions", rows, gen_params)
    merged_model = copy.deepcopy(model)  # one more copy of the LLM in memory (~13.5 GB at 7B)
    merged_model.llm.merge_adapter()
    with torch.inference_mode(), autocast:
        measure_alternating(
            [
                (student, lambda: model.generate(batch, rag=False, generation=generation)),
                (rag, lambda: model.generate(batch, rag=True, generation=generation)),
                (merged, lambda: merged_model.generate(batch, rag=False, generation=generation)),
            ],
            args.repeats,
            args.warmup,
            sync,
        )
        # Merging is only worth having if it decodes the same: bf16 rounding may flip a few tokens.
        # The control: the unmerged model against itself (GPU kernels need not be deterministic).
        unmerged = model.generate(batch, rag=False, generation=generation)
        rerun = model.generate(batch, rag=False, generation=generation)
        merged_captions = merged_model.generate(batch, rag=False, generation=generation)
    merged.extra["same_captions_as_unmerged"] = f"{sum(map(str.__eq__, merged_captions, unmerged))}/{rows}"
    merged.extra["same_captions_unmerged_rerun"] = f"{sum(map(str.__eq__, rerun, unmerged))}/{rows}"
    peak_generate = torch.cuda.max_memory_allocated() if sync else None
    for case in (student, rag, merged):
        case.extra["latency_ms_per_clip"] = round(1000 * case.median_s / rows, 1)
        case.extra["peak_memory_gb"] = None if peak_generate is None else round(peak_generate / 2**30, 2)
    return student, rag, merged


def write_result(
    args: Any, settings: dict[str, Any], train_case: Case, sides: tuple[Case, Case, Case]
) -> None:
    student, rag, merged = sides
    result = BenchmarkResult(
        name="paper_scale",
        args=args,
        settings=settings,
        versions=("torch", "transformers", "peft", "safetensors", "tokenizers"),
    )
    for case in (train_case, *sides):
        result.add(case)
    batch = settings["batch"]
    speedup = paired_ratio(f"student / rag @b{batch} (captions/s)", student, rag)
    merging = paired_ratio(f"student_merged / student @b{batch} (captions/s)", merged, student)
    result.ratios.extend([speedup, merging])
    result.findings.append(
        f"{args.scale} scale on {settings['device_name']}: distill step {train_case.median_s:.3g} s at "
        f"batch {batch} ({train_case.extra['tokens_per_s']:.4g} LLM tokens/s, peak GPU memory "
        f"{train_case.extra['peak_memory_gb'] or 'n/a'} GB); student vs retrieval captions/s "
        f"{speedup['median']:.2f}x (paper Fig. 5: 3.4x Clotho, 5.4x AudioCaps); LoRA merged into the "
        f"weights vs not: {merging['median']:.2f}x"
    )
    result.write()


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return round(time.perf_counter() - start, 2), value


def save_random_ced(scale: Scale, workdir: Path) -> Path:
    """A random CED encoder saved as the released checkpoints are: torch.save of the state dict."""
    encoder = CEDEncoder(dim=scale.ced_dim, depth=scale.ced_depth, num_heads=scale.ced_heads)
    path = workdir / "ced_random.pt"
    torch.save(encoder.state_dict(), path)
    return path


def save_random_llama(scale: Scale, captions: list[str], out_dir: Path, device: str) -> tuple[Path, int]:
    """A random Llama in bf16 + a caption tokenizer, save_pretrained to ``out_dir``; (dir, weight bytes).

    The model is created directly in bf16 on ``device`` (a 7B fp32 init on a CPU takes minutes and
    27 GB); save_pretrained writes safetensors. The tokenizer is padded with unused tokens to the
    config's vocabulary so the embedding table and LM head have the real model's shape.
    """
    tokenizer = train_caption_tokenizer(captions, scale.tokenizer_vocab)
    if scale.llm_vocab > len(tokenizer):
        tokenizer.add_tokens([f"<unused_{i}>" for i in range(scale.llm_vocab - len(tokenizer))])
    shape = LLMConfig(
        hidden_size=scale.llm_hidden,
        num_layers=scale.llm_layers,
        num_heads=scale.llm_heads,
        intermediate_size=scale.llm_intermediate,
        max_position_embeddings=2048,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = tiny_llama(shape, tokenizer)  # the project's Llama builder, at the sizes given
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out_dir, weight_bytes


def llm_positions(model: DistillCapsModel, batch: ModelBatch) -> dict[str, int]:
    """LLM positions one distill step processes: student + teacher prompts (audio tokens included),
    each followed by the target caption (its ids and eos, as the prompts tokenise it)."""
    with torch.inference_mode():
        tokens, mask = model.audio_tokens(batch)
        student = model.prompts.build(tokens, mask, padding_side="left")
        teacher = model.prompts.build(tokens, mask, retrieved=batch.retrieved, padding_side="left")
    caption_tokens = sum(len(model.prompts.caption_ids(c)) for c in batch.captions)
    student_positions = int(student.attention_mask.sum())
    teacher_positions = int(teacher.attention_mask.sum())
    return {
        "student_prompt": student_positions,
        "teacher_prompt": teacher_positions,
        "audio_tokens": int(mask.sum()),
        "caption_tokens": caption_tokens,
        "per_step": student_positions + teacher_positions + 2 * caption_tokens,
    }


def parameter_counts(model) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "encoder": sum(p.numel() for p in model.encoder.parameters()),
        "llm": sum(p.numel() for p in model.llm.parameters()),
    }


if __name__ == "__main__":
    raise SystemExit(main())
