"""Inference speed-up of distillation (paper Fig. 5: 3.4x Clotho, 5.4x AudioCaps): captions/s of the
student without retrieval vs the same model with retrieval, same batch, same decoding.

    python benchmarks/inference_speedup.py            # batch 16, 10 s clips, 30 new tokens
    python benchmarks/inference_speedup.py --quick    # batch 4
    python benchmarks/inference_speedup.py --config paper --device cuda   # the paper's stack on a GPU

Sides, measured alternately on the same audio:
  student         model.generate(rag=False): audio encoder -> adapter -> student prompt -> decode
  rag_online      caption_with_retrieval: CLAP query (from the encoder's own pass where the encoder
                  is the CLAP audio tower, as here) + index search + generate(rag=True) with the
                  teacher prompt (3 retrieved captions): what "with retrieval" costs a user
  rag_precomputed generate(rag=True) with captions already retrieved: the longer prompt alone
Both decode exactly ``--new-tokens`` tokens (min = max new tokens), so the sides differ only in
the work the prompt and the retrieval add, never in how soon a random model emits EOS. Latency per
clip at batch 1 is measured the same way. Without ``--config`` the model is a randomly initialised
tiny DistillCapsModel (speed does not depend on what weights learned; see settings.model).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    TinyStack,
    base_parser,
    build_configured_stack,
    build_random_tiny_stack,
    measure_alternating,
    paired_ratio,
    parse_args,
    random_audio,
    set_threads,
)
from distillcaps.data.batches import ModelBatch
from distillcaps.model.config import GenerationConfig
from distillcaps.model.encoders.base import EncoderOutput
from distillcaps.retrieval.online import caption_with_retrieval


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__file__, __doc__)
    parser.add_argument(
        "--config", default="", help="build the configured stack instead of a random tiny one"
    )
    parser.add_argument(
        "--batch", type=int, default=0, help="clips per generate call (0: 16, or 4 with --quick)"
    )
    parser.add_argument("--latency-clips", type=int, default=0, help="clips per batch-1 repetition (0: 4/2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (AudioCaps 10 s)")
    parser.add_argument("--new-tokens", type=int, default=30, help="tokens decoded per caption (paper: 30)")
    parser.add_argument("--num-beams", type=int, default=1, help="1 greedy (tiny preset); paper: beam search")
    parser.add_argument("--top-k", type=int, default=3, help="retrieved captions in the teacher prompt")
    parser.add_argument("--datastore", type=int, default=5000, help="synthetic captions in the random stack")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides (model.llm.num_layers=4 ...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(arg_parser(), argv)
    args.batch = args.batch or (4 if args.quick else 16)
    args.latency_clips = args.latency_clips or (2 if args.quick else 4)
    set_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        if args.config:
            stack = build_configured_stack(args.config, args.overrides)
        else:
            stack = build_random_tiny_stack(Path(tmp), args.overrides, datastore_size=args.datastore)
        stack.model.to(args.device).eval()
        sides = Sides(stack, args)
        result = BenchmarkResult(
            name="inference_speedup",
            args=args,
            settings={
                "model": stack.description,
                "config_overrides": args.overrides,
                "batch": args.batch,
                "latency_clips_per_repetition": args.latency_clips,
                "clip_seconds": args.seconds,
                "new_tokens": args.new_tokens,
                "num_beams": args.num_beams,
                "top_k": args.top_k,
                "index": stack.cfg.retrieval.index,
                "datastore_size": len(stack.retriever.datastore),
                "prompt_tokens": sides.prompt_lengths(),
                "paper_speedups": {"clotho": 3.4, "audiocaps": 5.4},
            },
            versions=("torch", "transformers", "peft", "faiss-cpu", "faiss-gpu"),
        )
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
        with torch.inference_mode():
            cases = measure_batch(sides, args, sync)
            latency = measure_latency(sides, args, sync)
        add_ratios_and_findings(result, cases, latency, sides.shared)
        result.write()
    return 0


class Sides:
    """What each side runs on the same random clips: the student, captioning with retrieval as a user
    meets it, the teacher prompt with captions already retrieved, and retrieval's own work."""

    def __init__(self, stack: TinyStack, args: Any) -> None:
        self.model, self.retriever, self.top_k = stack.model, stack.retriever, args.top_k
        self.generation = GenerationConfig(
            num_beams=args.num_beams, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens
        )
        self.audio, self.lengths = random_audio(args.batch, args.seconds)  # (B, S), (B,)
        self.precomputed = self.retriever.retrieve(self.audio, self.lengths, args.top_k)
        self.shared = self.retriever.shares_encoder(self.model.encoder)
        # the query from the encoder's own pass, computed once, where the encoder is the CLAP's tower
        encoded = self.model.encode_frozen(self.audio, self.lengths) if self.shared else None
        self.encoded = EncoderOutput(*encoded) if encoded else None

    def student(self, audio: torch.Tensor, lengths: torch.Tensor) -> None:
        self.model.generate(ModelBatch.from_waveforms(audio, lengths), rag=False, generation=self.generation)

    def rag_online(self, audio: torch.Tensor, lengths: torch.Tensor) -> None:
        # what a user's captioning with retrieval runs (serving, caption_split): where the encoder
        # is the CLAP audio tower, one pass serves both (benchmarks/inference_limits.py compares)
        caption_with_retrieval(self.model, self.retriever, audio, lengths, self.top_k, self.generation)

    def rag_precomputed(self) -> None:
        batch = ModelBatch.from_waveforms(self.audio, self.lengths, retrieved=self.precomputed)
        self.model.generate(batch, rag=True, generation=self.generation)

    def prompt_lengths(self) -> dict[str, int]:
        """LLM positions (audio tokens included) of the first clip's student and teacher prompts."""
        with torch.inference_mode():
            batch = ModelBatch.from_waveforms(self.audio[:1], self.lengths[:1])
            tokens, mask = self.model.audio_tokens(batch)
            student = self.model.prompts.build(tokens, mask, padding_side="left")
            teacher = self.model.prompts.build(
                tokens, mask, retrieved=self.precomputed[:1], padding_side="left"
            )
        return {
            "student": int(student.attention_mask.sum()),
            "teacher": int(teacher.attention_mask.sum()),
            "audio_tokens": int(mask.sum()),
        }

    def retrieval_only(self) -> None:
        # retrieval's own work on the RAG path: the query (from the shared encoder pass, computed
        # once, where there is one; else a CLAP pass over the audio) and the search
        self.retriever.retrieve(self.audio, self.lengths, self.top_k, encoded=self.encoded)


def measure_batch(sides: Sides, args: Any, sync: Callable[[], None] | None) -> dict[str, Case]:
    """The four sides at ``--batch`` clips per call, alternating."""
    batch, audio, lengths = args.batch, sides.audio, sides.lengths
    params = {"batch": batch, "new_tokens": args.new_tokens, "num_beams": args.num_beams}
    runs = {
        "student": ("captions", lambda: sides.student(audio, lengths)),
        "rag_online": ("captions", lambda: sides.rag_online(audio, lengths)),
        "rag_precomputed": ("captions", sides.rag_precomputed),
        "retrieval_only": ("clips", sides.retrieval_only),
    }
    cases = {name: Case(f"{name}/b{batch}", unit, batch, params) for name, (unit, _) in runs.items()}
    measure_alternating(
        [(cases[name], run) for name, (_, run) in runs.items()], args.repeats, args.warmup, sync
    )
    return cases


def measure_latency(sides: Sides, args: Any, sync: Callable[[], None] | None) -> tuple[Case, Case]:
    """Latency per clip at batch 1: each repetition captions ``--latency-clips`` clips one by one."""
    one = [
        (sides.audio[i : i + 1], sides.lengths[i : i + 1]) for i in range(min(args.latency_clips, args.batch))
    ]
    params = {"batch": 1, "clips": len(one), "new_tokens": args.new_tokens}
    student = Case("student/b1", "captions", len(one), params)
    rag = Case("rag_online/b1", "captions", len(one), params)
    measure_alternating(
        [
            (student, lambda: [sides.student(a, n) for a, n in one]),
            (rag, lambda: [sides.rag_online(a, n) for a, n in one]),
        ],
        args.repeats,
        args.warmup,
        sync,
    )
    return student, rag


def add_ratios_and_findings(
    result: BenchmarkResult, cases: dict[str, Case], latency: tuple[Case, Case], shared: bool
) -> None:
    for case in [*cases.values(), *latency]:
        if case.unit == "captions":
            case.extra["latency_ms_per_clip"] = round(
                1000 * statistics.median(case.repetitions_s) / case.items_per_repetition, 1
            )
        result.add(case)
    batch = result.settings["batch"]
    student, rag_online = cases["student"], cases["rag_online"]
    speedup = paired_ratio(f"student / rag_online @b{batch} (captions/s)", student, rag_online)
    precomputed = paired_ratio(
        f"student / rag_precomputed @b{batch} (captions/s)", student, cases["rag_precomputed"]
    )
    at_one = paired_ratio("student / rag_online @b1 (captions/s)", *latency)
    result.ratios += [speedup, precomputed, at_one]
    retrieval_share = statistics.median(
        r / o for r, o in zip(cases["retrieval_only"].repetitions_s, rag_online.repetitions_s)
    )
    result.findings.append(
        f"distillation speed-up (student vs with retrieval) at batch {batch}: {speedup['median']:.2f}x; "
        f"at batch 1: {at_one['median']:.2f}x (paper Fig. 5: 3.4x Clotho, 5.4x AudioCaps, LLaMA-7B); "
        f"retrieval's own work (query {'from the shared encoder pass' if shared else 'by a CLAP pass'} "
        f"+ search) is {100 * retrieval_share:.0f}% of the RAG path's time here"
    )


if __name__ == "__main__":
    raise SystemExit(main())
