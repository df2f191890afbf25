"""Run in a subprocess by test_laion_clap.py, with HF_HOME pointing at an empty temporary folder and
HF_HUB_OFFLINE=1 set before anything imports huggingface_hub.

1. Fills that HF cache with tiny stand-ins for what laion_clap fetches at import/build time:
   roberta-base (config + weights + tokenizer), bert-base-uncased (vocab.txt), facebook/bart-base
   (vocab.json + merges.txt). Real hub cache layout: models--<org>--<name>/{refs/main, snapshots/<sha>/}.
2. Builds laion_clap's own CLAP_Module on top and saves its weights the way laion-clap's trainer
   does: torch.save({"epoch", "state_dict": {"module." + key: tensor}}), position_ids included.
3. Loads that checkpoint through distillcaps' laion-clap backend and embeds audio and text.
Prints one JSON line with the results.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"
WORDS = ["a", "dog", "barks", "rain", "falls", "on", "roof"]


def snapshot_dir(hub: Path, repo: str) -> Path:
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(SNAPSHOT)
    snap = root / "snapshots" / SNAPSHOT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_bpe(snap: Path) -> int:
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + list("abcdefghijklmnopqrstuvwxyz")
    tokens += ["Ġ" + c for c in "abcdefghijklmnopqrstuvwxyz"] + ["Ġ", "."]
    (snap / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (snap / "merges.txt").write_text("#version: 0.2\n")
    return len(tokens)


def fill_hf_cache(hub: Path) -> None:
    import torch
    from transformers import RobertaConfig, RobertaModel

    roberta = snapshot_dir(hub, "roberta-base")
    vocab_size = write_bpe(roberta)
    config = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=768,  # laion-clap's text projection is hard-wired to 768 inputs
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=64,
        max_position_embeddings=80,  # 77 tokens + roberta's padding offset
        pad_token_id=1,
    )
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(roberta)
    write_bpe(snapshot_dir(hub, "facebook/bart-base"))
    bert = snapshot_dir(hub, "bert-base-uncased")
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")


def main(workdir: Path) -> None:
    hub = Path(os.environ["HF_HOME"]) / "hub"
    fill_hf_cache(hub)

    import laion_clap
    import torch

    module = laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-tiny", device="cpu")
    state = {f"module.{k}": v for k, v in module.model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(80)[
        None
    ]  # as old checkpoints carry it
    checkpoint = workdir / "tiny-laion-clap.pt"
    torch.save({"epoch": 1, "state_dict": state}, checkpoint)

    from distillcaps.config import load_config
    from distillcaps.retrieval.clap import build_clap

    cfg = load_config(None, ["retrieval.clap=laion-clap", f"retrieval.clap_checkpoint={checkpoint}"])
    clap = build_clap(cfg)
    waves = torch.randn(2, 32_000) * 0.1
    audio = clap.embed_audio(waves, torch.tensor([32_000, 16_000]))
    again = clap.embed_audio(waves[:1], torch.tensor([32_000]))
    text = clap.embed_text(["a dog barks", "rain falls on a roof"])
    print(
        json.dumps(
            {
                "identity": clap.identity,
                "audio_shape": list(audio.shape),
                "text_shape": list(text.shape),
                "audio_norms": audio.norm(dim=-1).tolist(),
                "text_norms": text.norm(dim=-1).tolist(),
                "deterministic": bool(torch.allclose(audio[:1], again, atol=1e-5)),
                "texts_differ": bool(not torch.allclose(text[0], text[1])),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
