"""Serving batching: throughput and p50/p99 latency at concurrency 1, 4 and 16 with ``@serve.batch``
(serve/config.yaml's max batch size and wait) vs batching off (max batch size 1), on loopback,
bounded requests and time; and Serve's overhead: the batched service against the bare captioning
function (``Captioner.caption``) at the same batch size.

    python benchmarks/serve_batching.py            # 32 requests per point (48 at concurrency 16)
    python benchmarks/serve_batching.py --quick    # 8 per point (48 at concurrency 16)
    python benchmarks/serve_batching.py --quick --tune 8:0.02 16:0.02 16:0.1   # extra batched modes

The service is the serving room's app (``distillcaps.serving.app.build_app``: FastAPI ingress +
batched CaptionModel deployment) on a local Ray Serve bound to 127.0.0.1, serving a checkpoint of
a randomly initialised tiny DistillCapsModel whose decoding is pinned to exactly ``--new-tokens``
tokens (min = max), so every request costs the same. The modes are applications deployed side by
side (``/batched``, ``/unbatched``, and one per ``--tune SIZE:WAIT``: same app, only the batching
differs), one model replica each, so no redeploy happens between measurements. Each repetition
runs every mode (alternating order) at every concurrency; a point sends its requests (wav uploads
of ``--seconds`` s) through ``--concurrency`` httpx clients. At the highest concurrency a point
sends at least 3 rounds of requests, so that batches form more than once.

The bare side (``bare/b<size>``) captions the same number of clips, already decoded, by calling
``Captioner.caption`` in this process on batches of the batched mode's max size, with the torch
threads a Serve replica runs with (1: Ray gives an actor of < 1 CPU OMP_NUM_THREADS=1); it runs
within every repetition, between the Serve points, while the replicas idle.
(``benchmarks/serve_load.py``, the serving room's, is the >= 300-request load test.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ray
import soundfile as sf
import torch
import yaml
from ray import serve
from ray.serve.api import _run as serve_run_nonblocking

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    base_parser,
    build_random_tiny_stack,
    paired_ratio,
    parse_args,
    percentile,
    start_benchmark_ray,
    time_call,
)
from distillcaps.ports import free_port
from distillcaps.serving.app import build_app
from distillcaps.serving.captioner import Captioner
from distillcaps.serving.upload import AudioLimits, decode_audio

SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve" / "config.yaml"
REPLICA_THREADS = 1  # a Serve replica of < 1 CPU runs with OMP_NUM_THREADS=1
# Serve kills a proxy that misses 3 health checks of 10 s; on a loaded 2-core machine a proxy can take
# longer than that to come up, so the checks get more time (the measured requests are unaffected).
SERVE_ENV = {
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S": "30",
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
}


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__file__, __doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--requests", type=int, default=0, help="requests per point (0: 32, or 16 with --quick)"
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per request")
    parser.add_argument("--new-tokens", type=int, default=20, help="tokens decoded per caption (pinned)")
    batching = deployed_batching()
    parser.add_argument(
        "--max-batch-size", type=int, default=batching["max_batch_size"], help="serve/config.yaml's"
    )
    parser.add_argument(
        "--batch-wait-timeout-s",
        type=float,
        default=batching["batch_wait_timeout_s"],
        help="serve/config.yaml's",
    )
    parser.add_argument(
        "--tune",
        nargs="*",
        default=[],
        help="extra batched modes SIZE:WAIT_S, measured at the top concurrency",
    )
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop a point's requests after this")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(arg_parser(), argv)
    plan = Plan.from_args(args)
    n = args.new_tokens
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        stack = build_random_tiny_stack(
            tmp / "stack",
            [
                f"model.generation.max_new_tokens={n}",
                f"model.generation.min_new_tokens={n}",
                "model.generation.num_beams=1",
            ],
            datastore_size=500,
        )
        checkpoint = stack.model.save_checkpoint(tmp / "checkpoint")
        body = wav_bytes(args.seconds)
        for key, value in SERVE_ENV.items():
            os.environ.setdefault(key, value)
        start_benchmark_ray(plan.ray_cpus)
        try:
            url = deploy_modes(plan, checkpoint, body)
            bare_fn = bare_captioning(checkpoint, body, plan.per_point[plan.top], args.max_batch_size)
            measure(plan, url, body, bare_fn, args)
            serve.shutdown()
        finally:
            ray.shutdown()
    write_result(plan, stack.description, args)
    return 0


@dataclass
class Plan:
    """The modes deployed side by side, the points each is measured at, and what those measured."""

    modes: dict[str, tuple[int, float]]  # name -> (max batch size, batch wait s)
    concurrency: list[int]
    requests: int  # --requests: per point, raised to one per client (3 rounds at the top concurrency)
    bare_batch: int
    cases: dict[tuple[str, int], Case] = field(default_factory=dict)
    bare: Case | None = None
    latencies_s: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    ingress_ms: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # no proxy, no HTTP
    batch_sizes: dict[tuple[str, int], Counter] = field(default_factory=dict)
    statuses: dict[tuple[str, int], Counter] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Any) -> Plan:
        modes = {"batched": (args.max_batch_size, args.batch_wait_timeout_s), "unbatched": (1, 0.0)}
        for spec in args.tune:
            size, _, wait = spec.partition(":")
            modes[f"b{int(size)}_w{round(1000 * float(wait))}ms"] = (int(size), float(wait))
        plan = cls(modes, args.concurrency, args.requests or (8 if args.quick else 32), args.max_batch_size)
        for mode, (size, wait_s) in modes.items():
            for c in plan.points(mode):
                params = {"mode": mode, "max_batch_size": size, "batch_wait_timeout_s": wait_s}
                key = (mode, c)
                requests = plan.per_point[c]
                plan.cases[key] = Case(
                    f"{mode}/c{c}", "requests", requests, {**params, "concurrency": c, "requests": requests}
                )
                plan.latencies_s[key], plan.ingress_ms[key] = [], []
                plan.batch_sizes[key], plan.statuses[key] = Counter(), Counter()
        clips = plan.per_point[plan.top]
        bare_params = {"batch": plan.bare_batch, "clips": clips, "torch_threads": REPLICA_THREADS}
        plan.bare = Case(f"bare/b{plan.bare_batch}", "captions", clips, bare_params)
        return plan

    @property
    def top(self) -> int:
        return max(self.concurrency)

    @property
    def per_point(self) -> dict[int, int]:
        # c=16 needs 16 requests in flight; the top concurrency 3 rounds of them
        return {c: max(self.requests, 3 * c if c == self.top else c) for c in self.concurrency}

    @property
    def ray_cpus(self) -> int:
        # each application holds 0.5 logical CPU (ingress + model replica at 0.25): more than 4 modes
        # would wait forever for a replica on 2 logical CPUs, so Ray is given what they hold
        return max(2, math.ceil(len(self.modes) / 2))

    def points(self, mode: str) -> list[int]:
        """Batched and unbatched at every concurrency; a --tune mode at the top one."""
        return self.concurrency if mode in ("batched", "unbatched") else [self.top]

    def record(self, key: tuple[str, int], point: dict[str, Any]) -> None:
        self.cases[key].record(point["wall_s"])
        self.latencies_s[key] += point["latencies_s"]
        self.ingress_ms[key] += point["ingress_ms"]
        self.batch_sizes[key].update(point["batch_sizes"])
        self.statuses[key].update(point["statuses"])


def deploy_modes(plan: Plan, checkpoint: Path, body: bytes) -> str:
    """Every mode as an application of its own (one model replica each) on a Serve bound to
    127.0.0.1, so the repetitions alternate between them without redeploying (a redeploy restarts
    replicas); -> the base URL once all answer."""
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"
    for mode, (max_batch_size, wait_s) in plan.modes.items():
        app = build_app(
            {"model_uri": str(checkpoint), "max_batch_size": max_batch_size, "batch_wait_timeout_s": wait_s}
        )
        # all start at once; wait_until_answering then waits for all (serve.run would wait for
        # each in turn, minutes apiece on a loaded machine)
        serve_run_nonblocking(app, name=mode, route_prefix=f"/{mode}", _blocking=False)
    wait_until_answering(url, [f"/{mode}" for mode in plan.modes], body)
    return url


def measure(plan: Plan, url: str, body: bytes, bare_fn, args: Any) -> None:
    """Every mode at its points and the bare side, in turn, the order reversed every repetition."""
    order = [*plan.modes, "bare"]
    for rep in range(args.warmup + args.repeats):
        for mode in order if rep % 2 == 0 else reversed(order):
            if mode == "bare":
                timing = time_call(bare_fn)
                if rep >= args.warmup:
                    plan.bare.record(*timing)
                continue
            for c in plan.points(mode):
                point = asyncio.run(run_point(f"{url}/{mode}", body, plan.per_point[c], c, args.max_seconds))
                if rep < args.warmup:
                    continue
                plan.record((mode, c), point)
                print(f"rep {rep - args.warmup} {mode} c={c}: {point['wall_s']:.2f} s", flush=True)


def write_result(plan: Plan, model: str, args: Any) -> None:
    result = BenchmarkResult(
        name="serve_batching",
        args=args,
        settings={
            "model": model,
            "decoding": f"greedy, exactly {args.new_tokens} new tokens per caption",
            "modes": {
                m: {"max_batch_size": s, "batch_wait_timeout_s": w} for m, (s, w) in plan.modes.items()
            },
            "deployed_batching": deployed_batching(),
            "concurrency": args.concurrency,
            "requests_per_point": plan.per_point,
            "bare": f"Captioner.caption on batches of {plan.bare_batch} decoded clips, "
            f"{REPLICA_THREADS} torch thread, in the benchmark's process",
            "targets": {"serve_over_bare_min": 0.7, "batched_over_unbatched_at_c16_min": 4.0},
            "audio_seconds": args.seconds,
            "transport": "HTTP on 127.0.0.1 (httpx.AsyncClient), POST /v1/captions with audio/wav",
            "ray_cpus": plan.ray_cpus,
            "cpu_count": os.cpu_count(),
        },
        versions=("ray", "fastapi", "httpx", "torch", "transformers"),
    )
    for key, case in plan.cases.items():
        lat_ms = [1000 * x for x in plan.latencies_s[key]]
        ingress = plan.ingress_ms[key]
        case.extra.update(
            {
                "p50_ms": round(percentile(lat_ms, 50), 1) if lat_ms else None,
                "p99_ms": round(percentile(lat_ms, 99), 1) if lat_ms else None,
                "ingress_p50_ms": round(percentile(ingress, 50), 1) if ingress else None,
                "batch_size_counts": {str(k): v for k, v in sorted(plan.batch_sizes[key].items())},
                "status_counts": {str(k): v for k, v in sorted(plan.statuses[key].items())},
            }
        )
        result.add(case)
    result.add(plan.bare)
    add_ratios_and_findings(result, plan, args.batch_wait_timeout_s)
    result.write()


def add_ratios_and_findings(result: BenchmarkResult, plan: Plan, wait_s: float) -> None:
    top, cases, bare = plan.top, plan.cases, plan.bare
    on_top = cases[("batched", top)]
    result.ratios.append(
        paired_ratio(f"batched / unbatched @c{top} (requests/s)", on_top, cases[("unbatched", top)])
    )
    overhead = paired_ratio(f"serve batched @c{top} / bare @b{plan.bare_batch} (captions/s)", on_top, bare)
    result.ratios.append(overhead)
    result.findings.append(
        f"Serve at concurrency {top} (max batch {plan.bare_batch}, wait {wait_s} s) answers "
        f"{on_top.median_rate:.1f} requests/s; the bare captioning function at batch {plan.bare_batch} "
        f"{bare.median_rate:.1f} captions/s: {overhead['median']:.2f} of it (target >= 0.7)"
    )
    for mode in plan.modes:
        if mode not in ("batched", "unbatched"):
            result.ratios.append(
                paired_ratio(
                    f"{mode} / unbatched @c{top} (requests/s)", cases[(mode, top)], cases[("unbatched", top)]
                )
            )
    for c in plan.concurrency:
        on, off = cases[("batched", c)], cases[("unbatched", c)]
        ratio = paired_ratio(f"batched / unbatched @c{c} (requests/s)", on, off)
        if c != top:
            result.ratios.append(ratio)
        result.findings.append(
            f"concurrency {c}: batched {on.median_rate:.2f} req/s (p50 {on.extra['p50_ms']} ms, p99 "
            f"{on.extra['p99_ms']} ms) vs unbatched {off.median_rate:.2f} req/s "
            f"(p50 {off.extra['p50_ms']} ms, p99 {off.extra['p99_ms']} ms): {ratio['median']:.2f}x throughput"
        )


def deployed_batching() -> dict[str, float]:
    """max_batch_size and batch_wait_timeout_s of serve/config.yaml's CaptionModel: what is deployed."""
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    for app in config["applications"]:
        for deployment in app.get("deployments", []):
            if deployment["name"] == "CaptionModel":
                user = deployment["user_config"]
                return {
                    "max_batch_size": user["max_batch_size"],
                    "batch_wait_timeout_s": user["batch_wait_timeout_s"],
                }
    raise KeyError(f"{SERVE_CONFIG}: no CaptionModel deployment with a user_config")


def bare_captioning(checkpoint: Path, body: bytes, clips: int, batch: int):
    """``clips`` decoded clips captioned by Captioner.caption in batches of ``batch``, at the replica's
    torch threads (restored after each call: the driver's own work keeps its threads)."""
    captioner = Captioner.from_uri(str(checkpoint))
    wave = decode_audio(body, AudioLimits()).waveform  # (S,) float32 16 kHz, as the ingress passes it
    waves = [wave] * clips

    def run() -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(REPLICA_THREADS)
        try:
            for start in range(0, clips, batch):
                captioner.caption(waves[start : start + batch])
        finally:
            torch.set_num_threads(threads)

    return run


async def run_point(url: str, body: bytes, requests: int, concurrency: int, max_seconds: float) -> dict:
    """``requests`` POSTs through ``concurrency`` clients; stops sending after ``max_seconds``."""
    latencies, ingress_ms, sizes, statuses = [], [], Counter(), Counter()
    sent = 0
    deadline = time.monotonic() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < requests and time.monotonic() < deadline:
            sent += 1
            started = time.perf_counter()
            response = await client.post("/v1/captions", content=body, headers={"content-type": "audio/wav"})
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                answer = response.json()
                sizes[answer.get("batch_size", 1)] += 1
                ingress_ms.append(answer["latency_ms"])  # upload read to answer, inside the ingress

    async with httpx.AsyncClient(
        base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall_s = time.perf_counter() - started
    return {
        "wall_s": wall_s,
        "latencies_s": latencies,
        "ingress_ms": ingress_ms,
        "batch_sizes": sizes,
        "statuses": statuses,
    }


def wait_until_answering(url: str, prefixes: list[str], body: bytes, timeout_s: float = 1800) -> None:
    """Block until every application answers a caption request (replicas start slowly under load)."""
    deadline = time.monotonic() + timeout_s
    for prefix in prefixes:
        while True:
            with contextlib.suppress(httpx.HTTPError):  # not listening yet: try again below
                response = httpx.post(
                    f"{url}{prefix}/v1/captions",
                    content=body,
                    headers={"content-type": "audio/wav"},
                    timeout=120,
                )
                if response.status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}{prefix} did not answer within {timeout_s} s")
            time.sleep(5)
        print(f"{prefix} is answering", flush=True)


def wav_bytes(seconds: float) -> bytes:
    t = np.arange(int(16_000 * seconds)) / 16_000
    wave = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.shape)
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), 16_000, format="WAV")
    return buffer.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
