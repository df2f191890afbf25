"""The captioner: audio encoder -> FFT adapter -> windowed Q-Former -> projector -> LoRA LLM.

    from distillcaps.model import DistillCapsModel
    model = DistillCapsModel.build(cfg)
    model.compute_loss(batch).loss.backward()
    model.generate(batch, rag=False)

Names are imported lazily: ``distillcaps.config`` imports ``distillcaps.model.config`` and must not
pay for torch/transformers on the way.
"""

from __future__ import annotations

from distillcaps.lazy_exports import lazy_exports

_EXPORTS = {
    "DistillCapsModel": "distillcaps_model",
    "LossOutput": "distillcaps_model",
    "AudioTokenizer": "distillcaps_model",
    "CheckpointMismatchError": "checkpoint",
    "LLMS": "llm_sources",
    "StandinMissingError": "standin_folders",
    "build_llm": "llm",
    "load_base_llm": "llm",
    "PromptBuilder": "prompts",
    "PromptBatch": "prompts",
    "generate_captions": "generation",
    "normalize_caption": "tokenizer",
    "train_caption_tokenizer": "tokenizer",
    "FFTAdapter": "fft_adapter",
    "GridFFTAdapter": "fft_adapter",
    "WindowedQFormer": "qformer",
    "Projector": "projector",
    "AudioEncoder": "encoders",
    "TinyAudioEncoder": "encoders",
    "CEDEncoder": "encoders",
    "build_audio_encoder": "encoders",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
