"""ensure_standins(cfg): every stand-in the config uses is built once, reused from its cache after,
and loadable by the registries; a config with real checkpoints builds nothing."""

from __future__ import annotations

import pytest

from distillcaps.config import load_config
from distillcaps.model.encoders import TinyAudioEncoder, build_audio_encoder
from distillcaps.model.llm_sources import LLMS
from distillcaps.model.standin_folders import StandinMissingError
from distillcaps.retrieval.clap import build_clap
from distillcaps.standins import ensure_checkpoint_standins, ensure_standins, tiny_clap, tiny_llm


@pytest.fixture
def trainings(monkeypatch) -> dict[str, int]:
    """How often each stand-in was trained (the real training, counted)."""
    counts = {"tiny-clap": 0, "tiny-llm": 0}

    def counted(name, train):
        def run(*args, **kwargs):
            counts[name] += 1
            return train(*args, **kwargs)

        return run

    monkeypatch.setattr(tiny_clap, "train_tiny_clap", counted("tiny-clap", tiny_clap.train_tiny_clap))
    monkeypatch.setattr(tiny_llm, "pretrain_tiny_llm", counted("tiny-llm", tiny_llm.pretrain_tiny_llm))
    return counts


def test_ensure_standins_builds_each_once_and_the_registries_load_them(small_overrides, trainings, tmp_path):
    cfg = load_config("tiny", small_overrides)
    with pytest.raises(StandinMissingError):  # nothing built yet: the registry says so, trains nothing
        build_audio_encoder(cfg)
    assert trainings == {"tiny-clap": 0, "tiny-llm": 0}

    folders = ensure_standins(cfg)
    assert sorted(folders) == ["tiny-clap", "tiny-llm"] and trainings == {"tiny-clap": 1, "tiny-llm": 1}
    for folder in folders.values():
        assert folder.parent == tmp_path / "cache" / "pretrained"
    stamps = {name: folder.stat().st_mtime_ns for name, folder in folders.items()}

    assert ensure_standins(cfg) == folders  # the second call: the caches, nothing trained again
    assert trainings == {"tiny-clap": 1, "tiny-llm": 1}
    assert {name: folder.stat().st_mtime_ns for name, folder in folders.items()} == stamps

    encoder = build_audio_encoder(cfg)  # the tiny CLAP's audio tower
    assert isinstance(encoder, TinyAudioEncoder) and encoder.dim == 32
    assert build_clap(cfg).identity.startswith("tiny-clap:")
    assert LLMS.get("tiny")(cfg) == str(folders["tiny-llm"])


def test_names_limit_what_is_built(small_overrides, trainings):
    cfg = load_config("tiny", small_overrides)
    assert list(ensure_standins(cfg, names=["tiny-clap"])) == ["tiny-clap"]
    assert trainings == {"tiny-clap": 1, "tiny-llm": 0}
    with pytest.raises(KeyError, match="unknown stand-in 'tiny-bert'"):
        ensure_standins(cfg, names=["tiny-bert"])


def test_a_config_with_real_checkpoints_builds_nothing(tmp_path, trainings):
    # The paper preset names its CED encoder, HF LLM and HF CLAP: no stand-in, and no data is read.
    cfg = load_config("paper", [f"data.cache_dir={tmp_path / 'cache'}"])
    assert ensure_standins(cfg) == {}
    # the tiny preset with every part given a checkpoint is the same
    tiny = load_config(
        "tiny",
        [
            f"data.cache_dir={tmp_path / 'cache'}",
            f"model.encoder.checkpoint={tmp_path / 'encoder'}",
            f"retrieval.clap_checkpoint={tmp_path / 'clap'}",
            "model.llm.name=hf",
            f"model.llm.path={tmp_path / 'llm'}",
        ],
    )
    assert ensure_standins(tiny) == {}
    assert trainings == {"tiny-clap": 0, "tiny-llm": 0} and not (tmp_path / "cache").exists()


def test_the_tiny_clap_is_built_for_the_encoder_alone(tmp_path):
    """A tiny encoder without a checkpoint loads the tiny CLAP's tower even when retrieval uses
    another CLAP, and retrieval's tiny CLAP is needed whatever the encoder; with both given a
    checkpoint, none is built."""
    from distillcaps.standins.ensure import uses_tiny_clap

    base = [f"data.cache_dir={tmp_path / 'cache'}"]
    other_clap = ["retrieval.clap=hf-clap", "retrieval.clap_checkpoint=x"]
    assert uses_tiny_clap(load_config("tiny", [*base, *other_clap]))
    assert uses_tiny_clap(load_config("tiny", [*base, "model.encoder.checkpoint=x"]))  # retrieval's
    assert not uses_tiny_clap(
        load_config("tiny", [*base, "model.encoder.checkpoint=x", "retrieval.clap_checkpoint=y"])
    )


def test_a_folder_without_a_saved_config_builds_nothing(tmp_path):
    assert ensure_checkpoint_standins(tmp_path) == {}  # load_checkpoint then names what is missing
