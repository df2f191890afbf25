"""The paper preset end to end on CPU, with tiny stand-ins saved in the real formats.

paper.yaml's components, unswitched: a CED encoder loaded from an original-format state dict
(torch.save of CEDEncoder.state_dict()), an HF causal LM loaded with from_pretrained in bfloat16
(a tiny Llama saved with save_pretrained), hf-clap retrieval from a tiny ClapModel saved with
save_pretrained, a Clotho-format data set (the embedded synthetic set, a few clips), distill mode,
bf16 autocast and gradient checkpointing. Only sizes and resources shrink (dims, clips, epochs,
workers, GPU off). One run goes: hf-clap retrieval precompute -> frozen CED features -> Ray Data ->
Ray Train TorchTrainer -> checkpoint -> evaluation without and with retrieval, logged to MLflow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from distillcaps.ray_runtime import ensure_ray

    ensure_ray(object_store_mb=512)
    yield
    ray.shutdown()


def make_stand_ins(root: Path) -> dict[str, Path]:
    """Every checkpoint paper.yaml points at, tiny, in the format the real one comes in."""
    from assembly_fixtures import save_tiny_llm
    from test_hf_clap import make_tiny_hf_clap

    from distillcaps.data.synth import SynthSettings, write_synthetic_dataset
    from distillcaps.model.encoders import CEDEncoder

    torch.manual_seed(0)
    ced = CEDEncoder(dim=64, depth=1, num_heads=1, num_classes=5)
    torch.save(ced.state_dict(), root / "ced_tiny.pt")  # what CED's released .pt files hold
    data = write_synthetic_dataset(root / "clotho", SynthSettings(num_train=16, num_val=4, num_eval=4))
    return {
        "ced": root / "ced_tiny.pt",
        "llm": save_tiny_llm(root / "llama"),
        "clap": cap_text_length(make_tiny_hf_clap(root / "clap")),
        "data": data,
    }


def cap_text_length(clap_dir: Path) -> Path:
    """Cap the tokenizer at the text tower's positions, as released CLAP tokenizers do (LAION's:
    model_max_length 512 for 514 RoBERTa positions); the test_hf_clap builder leaves it unbounded,
    which the one-word captions there never reach but the synthetic set's sentences do."""
    config_file = clap_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_file.read_text())
    positions = json.loads((clap_dir / "config.json").read_text())["text_config"]["max_position_embeddings"]
    tokenizer_config["model_max_length"] = positions - 2  # RoBERTa positions start after padding_idx 1
    config_file.write_text(json.dumps(tokenizer_config))
    return clap_dir


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_paper_preset_runs_end_to_end_on_stand_ins_in_the_real_formats(tmp_path, ray_cluster):
    from mlflow import MlflowClient

    from distillcaps.config import load_config
    from distillcaps.data import cache_dir_for
    from distillcaps.model.distillcaps_model import DistillCapsModel
    from distillcaps.tracking import tracking_uri
    from distillcaps.training.trainer import train

    paths = make_stand_ins(tmp_path)
    cfg = load_config(
        "paper",
        [
            f"run_dir={tmp_path / 'runs'}",
            f"model.encoder.checkpoint={paths['ced']}",
            "model.encoder.dim=64",
            f"model.llm.path={paths['llm']}",
            "model.qformer.dim=32",
            "model.qformer.num_heads=2",
            "model.generation.max_new_tokens=4",
            f"retrieval.clap_checkpoint={paths['clap']}",
            f"data.dataset_dir={paths['data']}",
            "data.max_seconds=5.0",  # the synthetic clips are 5 s
            "train.use_gpu=false",
            "train.num_workers=1",
            "train.cpus_per_worker=1",
            "train.epochs=1",
            "train.batch_size=4",
            "train.object_store_mb=512",
            # No JVM: METEOR/SPICE reload Java tables for minutes here (tested in tests/evaluation).
            "eval.metrics=[bleu_1,bleu_4,rouge_l,cider_d]",
            "eval.java_path=/nonexistent/java",
        ],
    )
    # the paper's components and settings, not the tiny preset's
    assert (cfg.preset, cfg.model.encoder.name, cfg.model.llm.name, cfg.retrieval.clap) == (
        "paper",
        "ced",
        "hf",
        "hf-clap",
    )
    train_settings = (cfg.train.mode, cfg.train.precision, cfg.train.gradient_checkpointing)
    assert train_settings == ("distill", "bf16", True)
    assert cfg.data.dataset_format == "clotho" and cfg.model.llm.dtype == "bfloat16"

    result = train(cfg, run_name="paper-standins")

    assert [h["epoch"] for h in result.history] == [1]
    # distill mode: the student's auto/RAG losses and the teacher-student DDA term all trained
    for key in ("train_loss", "train_loss_auto", "train_loss_rag", "train_loss_dda", "val_loss_student"):
        assert math.isfinite(result.history[0][key]), key
    assert (result.best_checkpoint / "trainable.safetensors").is_file()
    model = DistillCapsModel.load_checkpoint(result.best_checkpoint)
    assert model.cfg.model.encoder.name == "ced" and type(model.encoder).__name__ == "CEDEncoder"
    assert model.llm.get_input_embeddings().weight.dtype == torch.bfloat16

    # the retrieved captions came from hf-clap: its cache folder and manifest name the backend
    (retrieval_dir,) = (cache_dir_for(cfg) / "retrieval").iterdir()
    assert retrieval_dir.name.startswith("hf-clap-")
    (lists,) = [p for p in retrieval_dir.glob("lists-*") if p.is_dir()]
    manifest = json.loads((lists / "manifest.json").read_text())
    assert manifest["identity"].startswith("hf-clap:")
    for subset in ("dev", "val", "eval"):
        rows = (lists / f"{subset}.jsonl").read_text().splitlines()
        assert rows and len(json.loads(rows[0])["retrieved"]) >= cfg.retrieval.top_k

    # MLflow holds the run with the paper's components as its parameters
    run = MlflowClient(tracking_uri(cfg)).get_run(result.run_id)
    params = run.data.params
    assert run.data.tags["preset"] == "paper"
    assert params["model.encoder.name"] == "ced" and params["retrieval.clap"] == "hf-clap"
    assert params["train.precision"] == "bf16"

    for name, folder, rag in (("student", "eval", False), ("student_rag", "eval-rag", True)):
        evaluation = result.evaluations[name]
        assert evaluation.rag is rag and evaluation.num_clips == 4
        saved = json.loads((result.output_dir / folder / "metrics.json").read_text())
        assert saved["rag"] is rag
        assert math.isfinite(saved["metrics"]["cider_d"])
