"""A randomly initialised tiny DistillCaps stack for timing: model, CLAP, datastore, index, retriever.

Speed does not depend on what the weights learned, so the benchmarks time a *random* tiny model
built in seconds (no dataset, no pretraining) through the same classes as the trained one:

    stack = build_random_tiny_stack(workdir, overrides=["model.llm.num_layers=2"])
    stack.model        # DistillCapsModel.build(cfg) over a random TinyAudioEncoder + random Llama
    stack.retriever    # Retriever(TinyClapEncoder, CaptionDatastore, index) over synthetic captions
    stack.cfg          # the resolved Config (recorded in each result's settings)

With ``--config PATH`` a benchmark instead builds the configured (trained / paper) stack with
``DistillCapsModel.build(cfg)`` and ``Retriever.from_config(cfg)``; see ``build_configured_stack``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from distillcaps.config import Config, load_config
from distillcaps.model.distillcaps_model import DistillCapsModel
from distillcaps.model.encoders.tiny import TinyAudioEncoder
from distillcaps.model.llm import tiny_llama
from distillcaps.model.tokenizer import train_caption_tokenizer
from distillcaps.retrieval.clap.tiny import TinyClapEncoder
from distillcaps.retrieval.clap.tiny_model import AUDIO_DIR, TinyClap
from distillcaps.retrieval.clap.vocab import WordVocab
from distillcaps.retrieval.datastore import CaptionDatastore
from distillcaps.retrieval.index import build_index
from distillcaps.retrieval.retriever import Retriever
from distillcaps.standins import ensure_standins

# Words of the synthetic captions: sources, what they do, where (Clotho-like captions).
SOURCES = ["a dog", "a man", "a woman", "birds", "a car", "rain", "a child", "a crowd", "wind", "a bell"]
SOURCES += ["an engine", "water", "a train", "a door", "footsteps", "a phone", "music", "thunder"]
ACTIONS = ["barks", "speaks", "sings", "chirp", "passes by", "falls", "laughs", "cheers", "blows"]
ACTIONS += ["rings", "idles", "flows", "approaches", "creaks", "echo", "vibrates", "plays", "rumbles"]
PLACES = ["in the distance", "nearby", "in a park", "on a street", "indoors", "in a forest", "at night"]
PLACES += ["in a hall", "by the sea", "in the rain", "on a platform", "in a kitchen"]


def synthetic_captions(count: int, seed: int = 0) -> list[str]:
    """``count`` short captions ("a dog barks nearby while rain falls") of Clotho-like length."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        first = f"{rng.choice(SOURCES)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}"
        second = f" while {rng.choice(SOURCES)} {rng.choice(ACTIONS)}" if rng.random() < 0.6 else ""
        out.append(first + second)
    return out


@dataclass
class TinyStack:
    cfg: Config
    model: DistillCapsModel
    retriever: Retriever
    captions: list[str]  # the datastore's captions (also usable as training targets)
    description: str  # what was built, for the result's settings


def build_random_tiny_stack(
    workdir: Path, overrides: list[str] | None = None, datastore_size: int = 5000, seed: int = 0
) -> TinyStack:
    """Random-weight tiny model + tiny CLAP + datastore/index of ``datastore_size`` synthetic captions."""
    torch.manual_seed(seed)
    workdir = Path(workdir)
    captions = list(dict.fromkeys(synthetic_captions(datastore_size, seed)))  # distinct, as the datastore
    base = load_config("tiny", overrides or [])
    clap_dir = save_random_clap(base, captions, workdir / "clap")
    llm_dir, llm_params = save_random_llm(base, captions, workdir / "llm")
    cfg = load_config(
        "tiny",
        [
            *(overrides or []),
            f"model.encoder.checkpoint={clap_dir / AUDIO_DIR}",
            "model.llm.name=hf",
            f"model.llm.path={llm_dir}",
            f"retrieval.clap_checkpoint={clap_dir}",
            "retrieval.index_gpu=false",
        ],
    )
    model = DistillCapsModel.build(cfg)
    retriever = synthetic_retriever(cfg, clap_dir, captions)
    description = (
        f"randomly initialised tiny DistillCapsModel (Llama {base.model.llm.num_layers} layers x "
        f"{base.model.llm.hidden_size}, {llm_params / 1e6:.2f}M params; TinyAudioEncoder dim "
        f"{base.model.encoder.dim}) + random tiny CLAP; datastore of {len(captions)} synthetic captions, "
        f"index {cfg.retrieval.index!r}"
    )
    return TinyStack(cfg, model, retriever, captions, description)


def save_random_clap(cfg: Config, captions: list[str], clap_dir: Path) -> Path:
    """The tiny CLAP, random: its audio tower is also the captioning model's frozen encoder, as in
    the tiny preset (there the tower is trained contrastively first)."""
    encoder = TinyAudioEncoder.from_encoder_config(cfg.model.encoder)
    TinyClap(encoder, WordVocab.build(captions), cfg.retrieval.tiny).save(clap_dir)
    return clap_dir


def save_random_llm(cfg: Config, captions: list[str], llm_dir: Path) -> tuple[Path, int]:
    """The tiny Llama, random, saved as the tiny stand-in LLM is; -> (folder, parameter count)."""
    prompt_text = [
        cfg.model.prompt.student.replace("<audio>", " "),
        cfg.model.prompt.teacher_prefix.replace("{captions}", " "),
    ]
    tokenizer = train_caption_tokenizer(captions + prompt_text * 50, cfg.model.llm.vocab_size)
    llama = tiny_llama(cfg.model.llm, tokenizer)
    llama.save_pretrained(llm_dir)
    tokenizer.save_pretrained(llm_dir)
    return llm_dir, sum(p.numel() for p in llama.parameters())


def synthetic_retriever(cfg: Config, clap_dir: Path, captions: list[str]) -> Retriever:
    """A datastore of ``captions`` (5 per clip) embedded by the CLAP in ``clap_dir``, and its index."""
    clap = TinyClapEncoder(clap_dir, device="cpu")
    vectors = clap.embed_text(captions).numpy()
    sources = [[("bench", f"clip_{i // 5:05d}")] for i in range(len(captions))]
    store = CaptionDatastore(clap.identity, "dev", captions, sources, vectors)
    return Retriever(clap, store, build_index(cfg.retrieval, vectors), cfg.retrieval.search_k)


def build_configured_stack(config: str, overrides: list[str] | None = None) -> TinyStack:
    """The configured stack (trained tiny preset, or the paper's checkpoints on a GPU); the tiny
    preset's stand-ins (CLAP, pretrained Llama) are built first where it uses them."""
    cfg = load_config(config, overrides or [])
    ensure_standins(cfg)
    model = DistillCapsModel.build(cfg)
    retriever = Retriever.from_config(cfg)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    description = f"DistillCapsModel.build({config!r}) + Retriever.from_config"
    return TinyStack(cfg, model, retriever, list(retriever.datastore.captions), description)


def random_audio(batch: int, seconds: float, sample_rate: int = 16_000, seed: int = 0):
    """(B, S) noise-plus-tone waveforms and (B,) lengths: what the encoder sees from real clips."""
    gen = torch.Generator().manual_seed(seed)
    samples = int(seconds * sample_rate)
    t = torch.arange(samples) / sample_rate
    tones = torch.sin(2 * torch.pi * torch.randint(100, 2000, (batch, 1), generator=gen) * t)
    audio = 0.3 * tones + 0.1 * torch.randn(batch, samples, generator=gen)
    return audio.float(), torch.full((batch,), samples, dtype=torch.long)
