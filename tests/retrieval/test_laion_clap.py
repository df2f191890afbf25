"""laion-clap builds and embeds offline: a temporary HF cache with tiny stand-in files, HF_HUB_OFFLINE=1,
and a tiny checkpoint in laion-clap's own format. Runs in a subprocess because laion_clap reads the
hub at import time and HF_HOME must be set before huggingface_hub is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distillcaps.config import load_config
from distillcaps.retrieval.clap import build_clap

PROBE = Path(__file__).with_name("laion_offline_probe.py")


def test_laion_clap_builds_and_embeds_offline(tmp_path):
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["identity"].startswith("laion-clap:")
    assert result["audio_shape"][0] == 2 and result["text_shape"][0] == 2
    assert result["audio_shape"][1] == result["text_shape"][1]
    assert all(abs(n - 1) < 1e-4 for n in result["audio_norms"] + result["text_norms"])
    assert result["deterministic"] and result["texts_differ"]


def test_laion_clap_without_checkpoint_file_names_the_key(tmp_path):
    cfg = load_config(None, ["retrieval.clap=laion-clap", f"retrieval.clap_checkpoint={tmp_path}/missing.pt"])
    with pytest.raises(FileNotFoundError, match="retrieval.clap_checkpoint"):
        build_clap(cfg)


class Payload:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_laion_checkpoint_is_read_without_unpickling_code(tmp_path):
    import torch

    from distillcaps.retrieval.clap.laion import read_state_dict

    weights = {"module.a.weight": torch.ones(2)}
    weights["module.text_branch.embeddings.position_ids"] = torch.arange(3)
    torch.save({"epoch": 3, "name": "run", "state_dict": weights}, tmp_path / "trainer.pt")
    assert set(read_state_dict(tmp_path / "trainer.pt")) == {"a.weight"}  # prefix gone, position_ids dropped
    torch.save({"a.weight": torch.ones(2)}, tmp_path / "bare.pt")  # no position_ids: no KeyError
    assert set(read_state_dict(tmp_path / "bare.pt")) == {"a.weight"}
    torch.save({"state_dict": {"a.weight": Payload()}}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match=r"pickled.pt: not a plain checkpoint.*weights_only=True"):
        read_state_dict(tmp_path / "pickled.pt")
