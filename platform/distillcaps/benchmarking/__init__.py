"""The benchmark harness: what the scripts in ``benchmarks/`` share.

    timing       Case, measure_alternating, paired_ratio, percentile: sides measured side by side
    result       BenchmarkResult (the JSON a script writes, and its table), validate_result
    machine      machine_info, package_versions, load_note: what a figure was measured on
    script       base_parser, parse_args, set_threads, start_benchmark_ray: a script's common flags
    tiny_stack   build_random_tiny_stack: a random tiny model, CLAP, datastore and retriever

Importing the harness sets the benchmarks' environment defaults (offline, no telemetry, no tokenizer
thread pool) before a script imports the model room: huggingface_hub reads HF_HUB_OFFLINE when it is
first imported. Names are imported on first use, so the light modules do not pay for torch.
"""

from __future__ import annotations

from distillcaps.lazy_exports import lazy_exports
from distillcaps.process_env import OFFLINE, QUIET, SERIAL_TOKENIZERS, set_defaults

set_defaults(OFFLINE, QUIET, SERIAL_TOKENIZERS)

_EXPORTS = {
    "Case": "timing",
    "measure_alternating": "timing",
    "paired_ratio": "timing",
    "percentile": "timing",
    "time_call": "timing",
    "BenchmarkResult": "result",
    "validate_result": "result",
    "SCHEMA_VERSION": "result",
    "load_note": "machine",
    "machine_info": "machine",
    "package_versions": "machine",
    "base_parser": "script",
    "parse_args": "script",
    "set_threads": "script",
    "start_benchmark_ray": "script",
    "TinyStack": "tiny_stack",
    "build_configured_stack": "tiny_stack",
    "build_random_tiny_stack": "tiny_stack",
    "random_audio": "tiny_stack",
    "synthetic_captions": "tiny_stack",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
