"""The typed config: every shipped YAML loads, overrides apply, mistakes name their key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distillcaps.config import Config, ConfigError, load_config, shipped_configs

SHIPPED = sorted(shipped_configs())


def test_configs_are_shipped() -> None:
    names = set(SHIPPED)
    assert {"tiny", "smol", "paper"} <= names


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_loads(name: str) -> None:
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    assert cfg.preset in ("tiny", "smol", "paper")


def test_defaults_are_the_tiny_preset() -> None:
    assert load_config().to_dict() == load_config("tiny").to_dict()


def test_paper_preset_has_the_papers_hyper_parameters() -> None:
    cfg = load_config("paper")
    llm = cfg.model.llm
    assert (llm.lora_r, llm.lora_alpha, llm.lora_dropout) == (8, 32, 0.1)
    assert llm.lora_target_modules == ["q_proj", "v_proj"]
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.epochs, cfg.train.batch_size) == (
        5e-6,
        1e-6,
        50,
        64,
    )
    assert cfg.retrieval.top_k == 3 and cfg.train.temperature == 1.0
    assert cfg.data.sample_rate == 16_000 and cfg.data.max_seconds == 30.0
    assert cfg.model.encoder.name == "ced" and cfg.model.llm.name == "hf"
    assert cfg.model.generation.max_new_tokens == 30
    assert not cfg.train.preload_epoch and load_config("tiny").train.preload_epoch  # paper streams


def test_dotted_overrides_are_typed() -> None:
    cfg = load_config("tiny", ["train.epochs=3", "train.lr=2e-4", "train.mode=rag+auto", "seed=7"])
    assert cfg.train.epochs == 3 and cfg.train.lr == pytest.approx(2e-4)
    assert cfg.train.mode == "rag+auto" and cfg.seed == 7
    cfg = load_config("tiny", ["model.llm.lora_target_modules=[q_proj,k_proj,v_proj]"])
    assert cfg.model.llm.lora_target_modules == ["q_proj", "k_proj", "v_proj"]


def test_an_int_is_accepted_for_a_float() -> None:
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("trian.epochs=3", "unknown config key 'trian'"),
        ("train.epochs=three", "train.epochs: expected an integer"),
        ("train.epochs=2.5", "train.epochs: expected an integer"),
        ("train.use_gpu=maybe", "train.use_gpu: expected true/false"),
        ("train.mode=teacher", "train.mode: 'teacher' is not one of"),
        ("model.llm.lora_target_modules=q_proj", "model.llm.lora_target_modules: expected a list"),
        ("train", "not of the form key.sub=value"),
        ("train.epochs.x=1", "train.epochs: expected an integer"),
        ("train.lr=fast", "train.lr: expected a number"),
    ],
)
def test_mistakes_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config("tiny", [override])


def test_unknown_key_in_a_yaml_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 2\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.learning_rate"):
        load_config(bad)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="no preset 'tinny'; shipped: ablation, paper, quick, smol"):
        load_config("tinny")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_flat_view_for_tracking() -> None:
    flat = load_config("tiny").flat()
    assert flat["train.mode"] == "distill"
    assert flat["model.llm.lora_r"] == 16


def test_loading_a_config_imports_no_deep_learning_library() -> None:
    """Scripts load their config before starting Ray; torch or transformers on that path cost 5 s
    (the package __init__ files import their names lazily for this)."""
    code = (
        "import sys; from distillcaps.config import load_config; load_config('tiny'); "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
