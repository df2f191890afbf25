"""Load test and soak of the captioning service on loopback: a bounded number of requests, some bad.

    python benchmarks/serve_load.py --url http://127.0.0.1:8000            # a running `distillcaps serve`
    python benchmarks/serve_load.py --start models:/distillcaps-student@champion   # starts its own
    python benchmarks/serve_load.py --start CKPT --requests 1000 --concurrency 32 --bad-share 0.2  # soak

Sends ``--requests`` POST /v1/captions at ``--concurrency`` in flight: 1-4 s tones, and with
``--bad-share`` that share of uploads no client should send (empty, not audio, truncated, too short,
9 channels, an unsupported format, a few KB of FLAC declaring 8 channels at 384 kHz, NaN samples, a
header with 0 channels). Stops early at ``--max-seconds``. Reports status counts for good and bad
uploads, p50/p99 latency, throughput, the batch sizes the server formed, and (with ``--start``) the
peak RSS of the Serve processes; exits 1 on any 5xx, any good upload without its caption, any
non-JSON answer, or an unhealthy service afterwards. Only loopback addresses are accepted. Writes
``benchmarks/results/serve_load.json``. (The batching benchmark proper lives in the benchmarks room.)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import psutil

from distillcaps.benchmarking import SCHEMA_VERSION, load_note, machine_info, package_versions, percentile
from distillcaps.ports import free_port
from distillcaps.ray_runtime import ensure_ray
from distillcaps.serving.model_store import default_tracking_uri

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WAV = {"content-type": "audio/wav"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running service (loopback only)")
    target.add_argument("--start", metavar="MODEL", help="start a local service for MODEL (URI or dir)")
    parser.add_argument("--requests", type=int, default=320, help="total requests (>= 300 for a report)")
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of bad uploads (0-1)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--backend", default="distillcaps")
    parser.add_argument("--plugin-dir", default="", help="folder with a backend plugin module (tests)")
    parser.add_argument("--plugin-module", default="")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.02)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    return parser.parse_args()


def clips(count: int = 8) -> list[bytes]:
    import soundfile as sf

    out = []
    rng = np.random.default_rng(0)
    for i in range(count):
        seconds = 1.0 + 3.0 * i / max(count - 1, 1)
        t = np.arange(int(16_000 * seconds)) / 16_000
        wave = 0.4 * np.sin(2 * np.pi * (150.0 + 400.0 * i) * t) + 0.05 * rng.standard_normal(t.shape)
        buffer = io.BytesIO()
        sf.write(buffer, wave.astype(np.float32), 16_000, format="WAV")
        out.append(buffer.getvalue())
    return out


def bad_uploads() -> dict[str, bytes]:
    """Uploads no client should send, by name: each must get a JSON 4xx, never a 5xx."""
    import soundfile as sf

    def written(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
        buffer = io.BytesIO()
        sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
        return buffer.getvalue()

    tone = (0.3 * np.sin(np.arange(16_000) / 16_000 * 2 * np.pi * 440.0)).astype(np.float32)
    fmt = struct.pack("<HHIIHH", 1, 0, 16_000, 0, 0, 16)  # a WAV header with 0 channels
    zero_channels = b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    zero_channels += b"data" + struct.pack("<I", 0)
    return {
        "empty": b"",
        "not_audio": b"GIF89a" + bytes(2000),
        "truncated_wav": written(tone, 16_000)[:9000],
        "too_short": written(tone[:94], 16_000),
        "nine_channels": written(np.repeat(tone[:, None], 9, axis=1), 16_000),
        "paf_format": written(tone, 16_000, "PAF", "PCM_16"),
        "flac_bomb": written(np.zeros((384_000 * 2, 8), np.float32), 384_000, "FLAC"),
        "nan_samples": written(np.full(16_000, np.nan, np.float32), 16_000, subtype="FLOAT"),
        "zero_channels": zero_channels,
    }


class ServeMemory:
    """Peak resident memory of this host's Serve processes (replicas, proxy, controller), sampled."""

    def __init__(self) -> None:
        self.peak_mb: dict[str, float] = {}

    def sample(self) -> None:
        for process in psutil.process_iter(["cmdline", "memory_info"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if "ray::Serve" in cmdline or "ray::ProxyActor" in cmdline or "ray::Caption" in cmdline:
                name = cmdline.split()[0].split(".")[0]  # Ray appends the running method to the title
                rss_mb = process.info["memory_info"].rss / 2**20
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), round(rss_mb, 1))


def start_service(args: argparse.Namespace) -> str:
    from ray import serve

    from distillcaps.serving.app import build_app  # lazy: Ray Serve, FastAPI and torch (--start only)

    env = {"MLFLOW_DISABLE_TELEMETRY": "true"}
    if args.plugin_dir:
        env["PYTHONPATH"] = str(Path(args.plugin_dir).resolve())
    ensure_ray(num_cpus=2, object_store_mb=500, env_vars=env)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    options = {
        "model_uri": args.start,
        "tracking_uri": default_tracking_uri(args.tracking_uri) if ":/" in args.start else "",
        "backend": args.backend,
        "plugin_modules": [args.plugin_module] if args.plugin_module else [],
        "max_batch_size": args.max_batch_size,
        "batch_wait_timeout_s": args.batch_wait_timeout_s,
    }
    serve.run(build_app(options), name="distillcaps", route_prefix="/")
    return f"http://127.0.0.1:{port}"


@dataclass
class Tally:
    """What the service answered: statuses, latencies, the batch sizes it formed, what broke the contract."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    bad_statuses: Counter = field(default_factory=Counter)  # "<name> <status> <kind>"
    batch_sizes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)  # non-JSON answers, good uploads without caption
    sent: int = 0

    def answered(self, bad_name: str, status: int, latency_ms: float, answer: dict | None) -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[status] += 1
        if answer is None:
            self.problems["non_json_answer"] += 1
        elif bad_name:
            self.bad_statuses[f"{bad_name} {status} {answer.get('kind', '')}".strip()] += 1
        elif status == 200 and isinstance(answer.get("caption"), str):
            self.batch_sizes[answer.get("batch_size", 1)] += 1
        elif status != 503:  # a busy answer is allowed; anything else is not
            self.problems[f"good_upload_{status}"] += 1

    def report(self, wall_s: float) -> dict:
        done, statuses, lat = sum(self.statuses.values()), self.statuses, self.latencies_ms
        return {
            "requests_sent": self.sent,
            "responses": done,
            "transport_errors": dict(self.errors),
            "status_counts": {str(k): v for k, v in sorted(statuses.items())},
            "num_5xx": sum(v for k, v in statuses.items() if k >= 500),
            "wall_s": round(wall_s, 2),
            "throughput_rps": round(done / wall_s, 2) if wall_s > 0 else None,
            "latency_ms": {
                **{f"p{q}": round(percentile(lat, q), 1) for q in (50, 90, 99)},
                "max": round(max(lat), 1),
            }
            if lat
            else None,
            "batch_size_counts": {str(k): v for k, v in sorted(self.batch_sizes.items())},
            "bad_uploads": sum(self.bad_statuses.values()),
            "bad_upload_answers": dict(sorted(self.bad_statuses.items())),
            "num_4xx": sum(v for k, v in statuses.items() if 400 <= k < 500),
            "num_503": statuses.get(503, 0),
            "contract_breaches": dict(self.problems),
        }


async def send_requests(
    client, args: argparse.Namespace, tally: Tally, uploads: tuple, deadline: float
) -> None:
    """One client: sends the next request until ``--requests`` are sent or the deadline passes;
    ``uploads`` is (good bodies, [(name, bad body)]); every n-th upload is bad (n = 1 / --bad-share)."""
    good, bad = uploads
    every = round(1 / args.bad_share) if args.bad_share > 0 else 0
    while tally.sent < args.requests and time.monotonic() < deadline:
        number = tally.sent
        tally.sent += 1
        is_bad = every and number % every == every - 1
        name, body = bad[(number // max(every, 1)) % len(bad)] if is_bad else ("", good[number % len(good)])
        started = time.perf_counter()
        try:
            response = await client.post("/v1/captions", content=body, headers=WAV)
        except httpx.HTTPError as err:
            tally.errors[type(err).__name__] += 1
            continue
        latency_ms = (time.perf_counter() - started) * 1000.0
        try:
            answer = response.json()
        except ValueError:
            answer = None
        tally.answered(name, response.status_code, latency_ms, answer)


async def run_load(url: str, args: argparse.Namespace, memory: ServeMemory | None = None) -> dict:
    async def watch_memory() -> None:
        while memory is not None:
            await asyncio.to_thread(memory.sample)
            await asyncio.sleep(0.5)

    uploads = clips(), list(bad_uploads().items())
    tally, deadline = Tally(), time.monotonic() + args.max_seconds
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        model = (await client.get("/v1/model")).json()
        await client.post("/v1/captions", content=uploads[0][0], headers=WAV)  # warm-up
        watcher = asyncio.create_task(watch_memory())
        started = time.perf_counter()
        await asyncio.gather(
            *(send_requests(client, args, tally, uploads, deadline) for _ in range(args.concurrency))
        )
        wall_s = time.perf_counter() - started
        watcher.cancel()
        health = (await client.get("/healthz")).status_code
    return {
        "model": {key: model.get(key) for key in ("name", "version", "backend")},
        **tally.report(wall_s),
        "healthz_after": health,
        "serve_peak_rss_mb": dict(sorted(memory.peak_mb.items())) if memory else None,
        "stopped_by_time": tally.sent < args.requests,
    }


def main() -> int:
    args = parse_args()
    if args.requests < 1 or args.concurrency < 1:
        raise SystemExit("--requests and --concurrency must be >= 1")
    url = args.url or start_service(args)
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to load-test {url}: only loopback addresses ({', '.join(LOOPBACK)})")
    report = asyncio.run(run_load(url.rstrip("/"), args, ServeMemory() if args.start else None))
    machine = machine_info()
    result = {
        "benchmark": "serve_load",
        "schema_version": SCHEMA_VERSION,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "benchmarks/serve_load.py", *sys.argv[1:]]),
        "machine": machine,
        "versions": package_versions(("ray", "fastapi", "httpx", "torch", "soundfile")),
        "settings": {
            "concurrency": args.concurrency,
            "requests": args.requests,
            "max_seconds": args.max_seconds,
            "max_batch_size": args.max_batch_size if args.start else "server's",
            "batch_wait_timeout_s": args.batch_wait_timeout_s if args.start else "server's",
            "audio": "8 mono 16 kHz wav tones with noise, 1-4 s, cycled",
            "bad_share": args.bad_share,
            "bad_uploads": sorted(bad_uploads()),
        },
        "results": report,
        "note": load_note(machine),
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / "serve_load.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    latency = report["latency_ms"] or {}
    print(
        f"{report['responses']} responses in {report['wall_s']} s at concurrency {args.concurrency}: "
        f"{report['throughput_rps']} req/s, p50 {latency.get('p50')} ms, p99 {latency.get('p99')} ms, "
        f"statuses {report['status_counts']}, 5xx {report['num_5xx']}, "
        f"batch sizes {report['batch_size_counts']}; {report['bad_uploads']} bad uploads, "
        f"contract breaches {report['contract_breaches'] or 'none'}, "
        f"healthz after {report['healthz_after']}, "
        f"peak RSS of Serve processes {report['serve_peak_rss_mb']} MB"
    )
    print(f"wrote {path}")
    if args.start:
        from ray import serve

        serve.shutdown()
    failed = report["num_5xx"] or report["transport_errors"] or report["contract_breaches"]
    return 1 if failed or report["healthz_after"] != 200 else 0


if __name__ == "__main__":
    sys.exit(main())
