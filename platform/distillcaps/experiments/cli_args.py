"""The arguments every experiment script shares, and how they become a ConfigSource.

--config NAME|PATH [key.sub=value ...]   the invocation's config (default: ablation = tiny, 1 epoch)
--dataset-dir DIR --dataset-format F     your data instead of the embedded synthetic set
--seeds 0,1,2                            training seeds (mean ± std over them)
--output DIR                             where results.json / results.md / the plot go
--quick                                  the quick preset (configs/quick.yaml) over --config, one seed
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distillcaps.cli import add_config_arguments
from distillcaps.config import CONFIG_DIR, Config, read_yaml
from distillcaps.experiments.runner import ConfigSource
from distillcaps.process_env import OFFLINE, QUIET, RAY_PATIENT_START, set_defaults

QUICK_CONFIG = CONFIG_DIR / "quick.yaml"
DEFAULT_CONFIG = "ablation"  # configs/ablation.yaml: tiny at 1 epoch (25-min budget)
DEFAULT_SEEDS = (0, 1, 2)


def set_offline_environment() -> None:
    """Nothing is downloaded at run time, no telemetry; SIGTERM interrupts like Ctrl-C."""
    set_defaults(OFFLINE, QUIET, RAY_PATIENT_START)  # a loaded machine starts Ray nodes slowly
    interrupt_on_sigterm()


def interrupt_on_sigterm() -> None:
    """SIGTERM (a job scheduler, ``timeout``) behaves like Ctrl-C, so partial results get written."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def experiment_arg_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--dataset-dir", default=None, help="dataset folder (default: the synthetic set)")
    parser.add_argument(
        "--dataset-format",
        default=None,
        help="layout of --dataset-dir: a registered reader (clotho, audiocaps, jsonl)",
    )
    parser.add_argument(
        "--seeds", default=None, help="comma-separated training seeds (default 0,1,2; --quick: 0)"
    )
    parser.add_argument(
        "--output", default=None, help="output folder (default <run_dir>/experiments/<script>-<time>)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny data, one seed, 2 epochs: a smoke run")
    add_config_arguments(parser)
    parser.set_defaults(config=DEFAULT_CONFIG)
    return parser


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def parse_seeds(text: str | None, quick: bool) -> list[int]:
    if text is None:
        return [0] if quick else list(DEFAULT_SEEDS)
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: give at least one seed, each once")
    return seeds


def yaml_as_overrides(raw: Mapping[str, Any], prefix: str = "") -> list[str]:
    """A nested mapping as dotted overrides (JSON values are valid YAML for parse_override)."""
    out: list[str] = []
    for key, value in raw.items():
        if isinstance(value, Mapping):
            out += yaml_as_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def config_source(args: argparse.Namespace) -> ConfigSource:
    overrides: list[str] = []
    if args.quick:
        quick = read_yaml(QUICK_CONFIG)
        quick.pop("preset", None)
        overrides += yaml_as_overrides(quick)
    if args.dataset_dir:
        overrides.append(f"data.dataset_dir={json.dumps(str(Path(args.dataset_dir).resolve()))}")
    if args.dataset_format:
        overrides.append(f"data.dataset_format={args.dataset_format}")
    overrides += list(args.overrides)
    source = ConfigSource(args.config, overrides)
    source.load()  # fail early, naming the bad key
    return source


def output_dir(args: argparse.Namespace, script: str, cfg: Config) -> Path:
    if args.output:
        return Path(args.output).resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return (Path(cfg.run_dir) / "experiments" / f"{script}-{stamp}").resolve()


def data_notes(cfg: Config) -> list[str]:
    if not cfg.data.dataset_dir:
        return [
            f"Data: the embedded synthetic sound scenes (domain {cfg.data.synth.domain}, "
            f"{cfg.data.synth.num_train}/{cfg.data.synth.num_val}/{cfg.data.synth.num_eval} clips). "
            "The paper's numbers (Clotho/AudioCaps, CED-base + LLaMA-7B) are shown for the layout only; "
            "they are not comparable with ours.",
        ]
    return [f"Data: {cfg.data.dataset_dir} ({cfg.data.dataset_format})."]


def describe(args: Sequence[str]) -> str:
    return " ".join(args)
