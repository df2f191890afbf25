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

import statistics
import sys
import tempfile
from pathlib import Path

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
from _tiny_stack import build_configured_stack, build_random_tiny_stack, random_audio  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
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
    args = parse_args(parser, argv)
    batch = args.batch or (4 if args.quick else 16)
    latency_clips = args.latency_clips or (2 if args.quick else 4)
    set_threads(args.threads)

    from distillcaps.model.config import GenerationConfig
    from distillcaps.model.encoders.base import EncoderOutput
    from distillcaps.retrieval.online import caption_with_retrieval

    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        if args.config:
            stack = build_configured_stack(args.config, args.overrides)
        else:
            stack = build_random_tiny_stack(Path(tmp), args.overrides, datastore_size=args.datastore)
        model, retriever = stack.model.to(args.device).eval(), stack.retriever
        generation = GenerationConfig(
            num_beams=args.num_beams, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens
        )
        audio, lengths = random_audio(batch, args.seconds)
        precomputed = retriever.retrieve(audio, lengths, args.top_k)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else None

        result = BenchmarkResult(
            name="inference_speedup",
            args=args,
            settings={
                "model": stack.description,
                "config_overrides": args.overrides,
                "batch": batch,
                "latency_clips_per_repetition": latency_clips,
                "clip_seconds": args.seconds,
                "new_tokens": args.new_tokens,
                "num_beams": args.num_beams,
                "top_k": args.top_k,
                "index": stack.cfg.retrieval.index,
                "datastore_size": len(retriever.datastore),
                "prompt_tokens": prompt_lengths(model, audio[:1], lengths[:1], precomputed[:1]),
                "paper_speedups": {"clotho": 3.4, "audiocaps": 5.4},
            },
            versions=("torch", "transformers", "peft", "faiss-cpu", "faiss-gpu"),
        )

        def student(a=audio, n=lengths) -> None:
            model.generate({"audio": a, "audio_lengths": n}, rag=False, generation=generation)

        def rag_online(a=audio, n=lengths) -> None:
            # what a user's captioning with retrieval runs (serving, caption_split): where the encoder
            # is the CLAP audio tower, one pass serves both (benchmarks/inference_limits.py compares)
            caption_with_retrieval(model, retriever, a, n, args.top_k, generation)

        def rag_precomputed() -> None:
            batch_in = {"audio": audio, "audio_lengths": lengths, "retrieved": precomputed}
            model.generate(batch_in, rag=True, generation=generation)

        shared = retriever.shares_encoder(model.encoder)
        encoded = EncoderOutput(*model.encode_frozen(audio, lengths)) if shared else None

        def retrieval_only() -> None:
            # retrieval's own work on the RAG path: the query (from the shared encoder pass, computed
            # above, where there is one; else a CLAP pass over the audio) and the search
            retriever.retrieve(audio, lengths, args.top_k, encoded=encoded)

        params = {"batch": batch, "new_tokens": args.new_tokens, "num_beams": args.num_beams}
        cases = {
            "student": Case(f"student/b{batch}", "captions", batch, params),
            "rag_online": Case(f"rag_online/b{batch}", "captions", batch, params),
            "rag_precomputed": Case(f"rag_precomputed/b{batch}", "captions", batch, params),
            "retrieval_only": Case(f"retrieval_only/b{batch}", "clips", batch, params),
        }
        fns = {
            "student": student,
            "rag_online": rag_online,
            "rag_precomputed": rag_precomputed,
            "retrieval_only": retrieval_only,
        }
        with torch.inference_mode():
            measure_alternating([(cases[k], fns[k]) for k in cases], args.repeats, args.warmup, sync)

            # Latency per clip at batch 1: each repetition captions `latency_clips` clips one by one.
            one = [(audio[i : i + 1], lengths[i : i + 1]) for i in range(min(latency_clips, batch))]
            lat_params = {"batch": 1, "clips": len(one), "new_tokens": args.new_tokens}
            lat_student = Case("student/b1", "captions", len(one), lat_params)
            lat_rag = Case("rag_online/b1", "captions", len(one), lat_params)
            measure_alternating(
                [
                    (lat_student, lambda: [student(a, n) for a, n in one]),
                    (lat_rag, lambda: [rag_online(a, n) for a, n in one]),
                ],
                args.repeats,
                args.warmup,
                sync,
            )
        for case in [*cases.values(), lat_student, lat_rag]:
            if case.unit == "captions":
                case.extra["latency_ms_per_clip"] = round(
                    1000 * statistics.median(case.repetitions_s) / case.items_per_repetition, 1
                )
            result.add(case)
        speedup = paired_ratio(
            f"student / rag_online @b{batch} (captions/s)", cases["student"], cases["rag_online"]
        )
        result.ratios.append(speedup)
        result.ratios.append(
            paired_ratio(
                f"student / rag_precomputed @b{batch} (captions/s)",
                cases["student"],
                cases["rag_precomputed"],
            )
        )
        latency = paired_ratio("student / rag_online @b1 (captions/s)", lat_student, lat_rag)
        result.ratios.append(latency)
        retrieval_share = statistics.median(
            r / o for r, o in zip(cases["retrieval_only"].repetitions_s, cases["rag_online"].repetitions_s)
        )
        result.findings.append(
            f"distillation speed-up (student vs with retrieval) at batch {batch}: {speedup['median']:.2f}x; "
            f"at batch 1: {latency['median']:.2f}x (paper Fig. 5: 3.4x Clotho, 5.4x AudioCaps, LLaMA-7B); "
            f"retrieval's own work (query {'from the shared encoder pass' if shared else 'by a CLAP pass'} "
            f"+ search) is {100 * retrieval_share:.0f}% of the RAG path's time here"
        )
        result.write()
    return 0


def prompt_lengths(model, audio, lengths, retrieved) -> dict[str, int]:
    """Prompt length in LLM positions (audio tokens included) of the student and the teacher prompt."""
    with torch.inference_mode():
        tokens, mask = model.audio_tokens({"audio": audio.to(model.device), "audio_lengths": lengths})
        student = model.prompts.build(tokens, mask, padding_side="left")
        teacher = model.prompts.build(tokens, mask, retrieved=retrieved, padding_side="left")
    return {
        "student": int(student.attention_mask.sum()),
        "teacher": int(teacher.attention_mask.sum()),
        "audio_tokens": int(mask.sum()),
    }


if __name__ == "__main__":
    raise SystemExit(main())
