"""Argument handling shared by the scripts, the timing protocol and the sweep's config plumbing."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillcaps.config import ConfigError
from distillcaps.experiments.cli_args import config_source, experiment_arg_parser, parse_seeds
from distillcaps.experiments.inference_time import SIDES, alternating_order, time_sides


def parse(*argv: str):
    return experiment_arg_parser("x.py", "x").parse_args(list(argv))


def sweep_args(*argv: str):
    from distillcaps.experiments.sweep import add_arguments

    parser = experiment_arg_parser("sweep.py", "sweep")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_quick_layers_the_quick_config_under_user_overrides(tmp_path: Path) -> None:
    args = parse("--quick", "--dataset-dir", str(tmp_path), "--dataset-format", "jsonl", "train.epochs=1")
    cfg = config_source(args).load()
    assert (cfg.data.synth.num_train, cfg.data.synth.num_val, cfg.data.synth.num_eval) == (48, 16, 16)
    assert cfg.train.epochs == 1  # the user's override wins over quick.yaml's 2
    assert cfg.data.dataset_dir == str(tmp_path.resolve()) and cfg.data.dataset_format == "jsonl"
    assert parse_seeds(args.seeds, args.quick) == [0]
    assert config_source(parse()).load().data.synth.num_train == 600  # default: the tiny preset


def test_seeds_and_bad_overrides_are_named() -> None:
    assert parse_seeds(None, quick=False) == [0, 1, 2]
    assert parse_seeds("3,5", quick=True) == [3, 5]
    with pytest.raises(ValueError, match="--seeds 'a,b'"):
        parse_seeds("a,b", quick=False)
    with pytest.raises(ValueError, match="each once"):
        parse_seeds("1,1", quick=False)
    with pytest.raises(ConfigError, match="train.epoch"):
        config_source(parse("train.epoch=3"))


def test_timing_alternates_sides_and_warms_up_untimed() -> None:
    assert alternating_order(3) == [
        (0, SIDES[0]), (0, SIDES[1]), (1, SIDES[1]), (1, SIDES[0]), (2, SIDES[0]), (2, SIDES[1]),
    ]  # fmt: skip
    calls: list[str] = []
    now = [0.0]

    def caption(side: str) -> list[str]:
        calls.append(side)
        now[0] += 3.0 if side == "with_retrieval" else 1.0  # a fake clock: retrieval costs 3x
        return []

    seconds = time_sides(caption, repeats=2, clock=lambda: now[0])
    assert calls[:2] == list(SIDES)  # warm-up once per side, not timed
    assert len(calls) == 6
    assert seconds == {"without_retrieval": [1.0, 1.0], "with_retrieval": [3.0, 3.0]}


def test_sweep_space_and_trial_overrides(tmp_path: Path) -> None:
    from distillcaps.experiments.sweep import SEARCH_SPACES, absolute_overrides, trial_overrides

    space = SEARCH_SPACES.get("default")()
    assert set(space) == {"train.temperature", "retrieval.top_k", "model.llm.lora_r", "train.lr"}
    args = parse(f"run_dir={tmp_path / 'r'}", f"tracking.tracking_uri=sqlite:///{tmp_path / 'm.db'}")
    source = config_source(args)
    params = {"train.temperature": 2.0, "retrieval.top_k": 5, "model.llm.lora_r": 4, "train.lr": 1e-3}
    cfg = source.load(*absolute_overrides(source.load()), *trial_overrides(params))
    assert (cfg.train.temperature, cfg.retrieval.top_k, cfg.model.llm.lora_r) == (2.0, 5, 4)
    assert cfg.train.lr == pytest.approx(1e-3)
    assert Path(cfg.data.data_root).is_absolute() and Path(cfg.run_dir).is_absolute()
    assert cfg.tracking.tracking_uri == f"sqlite:///{tmp_path / 'm.db'}"


def test_the_sweep_defaults_to_trials_that_asha_can_stop_early() -> None:
    args = sweep_args()
    # ASHA stops trials at epoch boundaries after the grace period: one-epoch trials would all finish
    assert config_source(args).load().train.epochs > args.grace_period
    assert config_source(parse()).load().train.epochs == 1  # the table scripts' 25-minute default


def test_the_sweeps_half_cpu_workers_come_from_its_config_not_over_other_presets() -> None:
    assert config_source(sweep_args()).load().train.cpus_per_worker == 0.5  # two trials on 2 cores
    assert config_source(sweep_args("--quick")).load().train.cpus_per_worker == 0.5
    paper = config_source(sweep_args("--config", "paper")).load()
    assert paper.train.use_gpu and paper.train.cpus_per_worker == 4.0  # the GPU preset keeps its own


def test_sweep_trials_at_once_default_to_what_the_cluster_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    from distillcaps.config import load_config
    from distillcaps.experiments.sweep import trials_at_once

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # a trial: its process 0.25 + its Train worker 0.5 + its data stages 0.25 = 1 CPU
    cfg = load_config("tiny", ["train.cpus_per_worker=0.5", "train.data_stage_cpus=0.25"])
    assert trials_at_once(sweep_args(), cfg, 4, {"CPU": 2.0}) == 2
    assert trials_at_once(sweep_args(), cfg, 4, {"CPU": 16.0}) == 4  # never more than the trials
    assert trials_at_once(sweep_args(), cfg, 4, {"CPU": 0.5}) == 1  # at least one
    gpu = load_config("tiny", ["train.use_gpu=true", "train.num_workers=2", "train.cpus_per_worker=1"])
    assert trials_at_once(sweep_args(), gpu, 12, {"CPU": 64.0, "GPU": 8.0}) == 4  # 2 GPUs a trial


def test_sweep_refuses_more_trials_at_once_than_a_local_instance_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from distillcaps.config import load_config
    from distillcaps.experiments.sweep import trials_at_once

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = load_config("tiny", ["train.cpus_per_worker=0.5", "train.data_stage_cpus=0.25"])
    # the set-up that once left two trials' data stages without a CPU until they were stopped
    args = sweep_args("--max-concurrent", "2", "--trial-cpus", "0.5")
    with pytest.raises(ValueError, match=r"--max-concurrent 2 needs 2.5 CPUs .*--trial-cpus 0.5.*has 2"):
        trials_at_once(args, cfg, 4, {"CPU": 2.0})
    assert trials_at_once(sweep_args("--max-concurrent", "2"), cfg, 4, {"CPU": 2.0}) == 2
    # a joined cluster may be autoscaling: what the user asked for stands
    monkeypatch.setenv("RAY_ADDRESS", "ray-head:6379")
    assert trials_at_once(args, cfg, 4, {"CPU": 2.0}) == 2


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_sweep_max_concurrent_must_be_positive(bad: str) -> None:
    with pytest.raises(SystemExit):
        sweep_args("--max-concurrent", bad)


def test_the_champion_is_the_best_finished_trial() -> None:
    from types import SimpleNamespace

    from distillcaps.experiments.sweep import best_finished_trial

    def trial(value: float, finished: bool = True, error: object = None) -> SimpleNamespace:
        metrics = {"val_loss_student": value}
        if finished:
            metrics["best_checkpoint"] = f"/ckpt/{value}"
        return SimpleNamespace(metrics=metrics, error=error)

    grid = [trial(2.0), trial(0.5, finished=False), trial(1.0), trial(0.1, error=RuntimeError("x"))]
    assert best_finished_trial(grid, "val_loss_student").metrics["best_checkpoint"] == "/ckpt/1.0"
    with pytest.raises(RuntimeError, match="no trial finished"):
        best_finished_trial([trial(1.0, finished=False)], "val_loss_student")


def test_register_champion_is_what_serving_resolves(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from distillcaps.experiments.sweep import ALIAS, MODEL_NAME, register_champion
    from distillcaps.experiments.tracking import ExperimentTracker
    from distillcaps.serving.model_store import resolve_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = config_source(parse(f"tracking.tracking_uri={uri}", f"run_dir={tmp_path}")).load()
    tracker = ExperimentTracker(cfg)
    checkpoint = tmp_path / "best"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "trainable.safetensors").write_bytes(b"weights")
    runs = []
    for _ in range(2):  # a second registration moves the alias to the new version
        run_id = tracker.start_child(tracker.start_parent("sweep", "p"), "trial", {})
        tracker.client.log_artifacts(run_id, str(checkpoint), "checkpoint")
        runs.append((run_id, register_champion(run_id, cfg)))
    assert [v for _, v in runs] == ["1", "2"]
    version = MlflowClient(uri).get_model_version_by_alias(MODEL_NAME, ALIAS)
    assert (str(version.version), version.run_id) == ("2", runs[1][0])
    resolved = resolve_model(f"models:/{MODEL_NAME}@{ALIAS}", tracking_uri=uri, cache_dir=tmp_path / "cache")
    assert (resolved.path / "trainable.safetensors").read_bytes() == b"weights" and resolved.version == "2"
    empty = tracker.start_child(tracker.start_parent("sweep", "p"), "trial", {})
    with pytest.raises(RuntimeError, match="no checkpoint/ artifacts"):
        register_champion(empty, cfg)


def test_the_random_search_itself_bounds_concurrent_trials() -> None:
    """Tune ignores TuneConfig.max_concurrent_trials for a ready-made BasicVariantGenerator; two
    trials then held both CPUs of a 2-core machine and their Train workers never started."""
    from distillcaps.experiments.sweep import SEARCH_ALGORITHMS

    search = SEARCH_ALGORITHMS.get("random")(seed=0, max_concurrent=1)
    assert search.max_concurrent == 1


def test_portable_path_is_relative_under_the_working_directory(tmp_path, monkeypatch):
    from distillcaps.experiments.runner import portable_path

    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "runs" / "train" / "best") == "runs/train/best"
    assert portable_path(Path("/elsewhere/best")) == "/elsewhere/best"
    assert portable_path(Path("runs/best")) == "runs/best"
