"""Rows and batches that training, evaluation and captioning share, with no Ray in them.

    rows = split_rows(records, retrieved, per="caption")   # training: one row per caption
    batch = DecodeAudio(16_000, num_samples(cfg), random_crop=False)(numpy_batch)
    model_batch = to_model_batch(batch, grid)              # numpy rows -> ModelBatch
    model_batch = ModelBatch.from_waveforms(audio, lengths, retrieved=hits)
    model_batch = ModelBatch.from_features(tokens, mask, grid, captions=captions)

`ModelBatch` is what `DistillCapsModel` reads (`compute_loss`, `generate`); it is built only by the
constructors here. `distillcaps.training.data_pipeline` runs `DecodeAudio` as a Ray Data stage;
evaluation calls it directly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from distillcaps.config import Config
    from distillcaps.data.records import ClipRecord


# ---------------------------------------------------------------------------------------------
# Rows


def split_rows(
    records: list[ClipRecord],
    retrieved: dict[str, list[dict[str, Any]]],
    per: Literal["caption", "clip"],
) -> list[dict[str, Any]]:
    """Plain-python rows for ``ray.data.from_items``.

    per="caption" (training): {clip, fname, path, caption, retrieved}, one per reference caption.
    per="clip" (validation/evaluation): {clip, fname, path, references, retrieved}, one per clip.
    ``clip`` is the record's position in ``records`` (the row of its cached features).
    """
    rows = []
    for clip, record in enumerate(records):
        top = [hit["caption"] for hit in retrieved[record.fname]]  # a clip without a line: an error
        base = {"clip": clip, "fname": record.fname, "path": str(record.path), "retrieved": top}
        if per == "caption":
            rows.extend({**base, "caption": caption} for caption in record.captions)
        else:
            rows.append({**base, "references": list(record.captions)})
    return rows


# ---------------------------------------------------------------------------------------------
# Decoding


class DecodeAudio:
    """CPU stage: decode (soundfile), down-mix, resample to the model rate, crop or pad to a fixed length.

    Adds "audio" (B, S) float32 and "audio_lengths" (B,) int64 (valid samples before padding), from
    `distillcaps.data.audio.load_waveforms`. Random crops (training without the feature cache) draw
    from one generator seeded by ``seed``; it lives as long as the instance (the worker process
    under ``run_stage``), so every epoch crops afresh.
    """

    def __init__(self, sample_rate: int, num_samples: int, random_crop: bool, seed: int = 0) -> None:
        import torch

        torch.set_num_threads(1)
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.random_crop = random_crop
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from distillcaps.data.audio import load_waveforms  # lazy: the audio module imports torch

        audio, lengths = load_waveforms(
            list(batch["path"]),
            self.sample_rate,
            self.num_samples,
            random_crop=self.random_crop,
            generator=self.generator,
        )
        batch["audio"] = audio.numpy()  # (B, S) float32
        batch["audio_lengths"] = lengths.numpy()  # (B,) int64
        if "retrieved" in batch:
            batch["retrieved"] = plain_lists(batch["retrieved"])
        return batch


def plain_lists(column) -> np.ndarray:
    """Lists of str in an object array: numpy string arrays inside objects do not convert to Arrow."""
    out = np.empty(len(column), dtype=object)
    for i, item in enumerate(column):
        out[i] = [str(x) for x in item]
    return out


def num_samples(cfg: Config) -> int:
    return int(round(cfg.data.max_seconds * cfg.data.sample_rate))


# ---------------------------------------------------------------------------------------------
# The model's batch


class MissingBatchFieldError(ValueError):
    """A model method needs a field the batch was built without."""


@dataclass(frozen=True)
class ModelBatch:
    """What `DistillCapsModel` reads from a batch of B clips: the audio or the frozen encoder's
    output for it (one of the two), plus the text each row carries.

    Built by `to_model_batch` (a numpy batch from Ray Data or `DecodeAudio`), `from_waveforms` or
    `from_features`; a method that needs a field the batch lacks raises MissingBatchFieldError
    naming it (`require`).
    """

    # the audio itself ...
    audio: torch.Tensor | None = None  # (B, S) float32 at data.sample_rate, zero-padded
    audio_lengths: torch.Tensor | None = None  # (B,) int64 valid samples; None: every sample counts
    # ... or the frozen encoder's output for it (the feature cache, or a pass shared with retrieval)
    encoder_tokens: torch.Tensor | None = None  # (B, N, D) float32, band-major
    encoder_mask: torch.Tensor | None = None  # (B, N) bool
    encoder_grid: tuple[int, int] | None = None  # (bands, time_patches)
    # text, one entry per row
    captions: list[str] | None = None  # the loss targets (training); clip rows: the first reference
    references: list[list[str]] | None = None  # every reference of a clip row
    retrieved: list[list[str]] | None = None  # retrieved captions, best first: the teacher prompt
    fname: list[str] | None = None  # clip names, for messages

    def __post_init__(self) -> None:
        if (self.audio is None) == (self.encoder_tokens is None):
            raise ValueError("a ModelBatch holds audio (B, S) or encoder_tokens (B, N, D), exactly one")
        if self.encoder_tokens is not None and (self.encoder_mask is None or self.encoder_grid is None):
            raise ValueError("encoder_tokens need their encoder_mask (B, N) and encoder_grid (bands, time)")
        rows = len(self)
        for field in ("audio_lengths", "encoder_mask", "captions", "references", "retrieved", "fname"):
            value = getattr(self, field)
            if value is not None and len(value) != rows:
                raise ValueError(f"the batch has {rows} rows but {len(value)} entries in {field!r}")

    @classmethod
    def from_waveforms(
        cls,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor | None = None,
        *,
        captions: list[str] | None = None,
        references: list[list[str]] | None = None,
        retrieved: list[list[str]] | None = None,
        fname: list[str] | None = None,
    ) -> ModelBatch:
        """audio (B, S) float32, audio_lengths (B,) int64: `distillcaps.data.audio.pad_waveforms`."""
        return cls(
            audio=audio,
            audio_lengths=audio_lengths,
            captions=captions,
            references=references,
            retrieved=retrieved,
            fname=fname,
        )

    @classmethod
    def from_features(
        cls,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        grid: tuple[int, int],
        *,
        captions: list[str] | None = None,
        references: list[list[str]] | None = None,
        retrieved: list[list[str]] | None = None,
        fname: list[str] | None = None,
    ) -> ModelBatch:
        """The frozen encoder's output, as `DistillCapsModel.encode_frozen` returns it:
        tokens (B, N, D), mask (B, N) bool, grid (bands, time_patches)."""
        return cls(
            encoder_tokens=tokens,
            encoder_mask=mask,
            encoder_grid=(int(grid[0]), int(grid[1])),
            captions=captions,
            references=references,
            retrieved=retrieved,
            fname=fname,
        )

    def __len__(self) -> int:
        return (self.audio if self.audio is not None else self.encoder_tokens).shape[0]

    def require(self, field: str, needed_by: str) -> Any:
        """The field's value, or MissingBatchFieldError saying what needs it."""
        value = getattr(self, field)
        if value is None:
            raise MissingBatchFieldError(f"the batch has no {field!r}, needed by {needed_by}")
        return value

    def to(self, device: torch.device | str) -> ModelBatch:
        """The same batch with its tensors on ``device``."""
        return dataclasses.replace(
            self,
            audio=_to(self.audio, device),
            audio_lengths=_to(self.audio_lengths, device),
            encoder_tokens=_to(self.encoder_tokens, device),
            encoder_mask=_to(self.encoder_mask, device),
        )


def _to(tensor: torch.Tensor | None, device: torch.device | str) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device)


def to_model_batch(batch: dict[str, np.ndarray], grid: tuple[int, int] | None) -> ModelBatch:
    """A numpy batch (Ray Data's, or `DecodeAudio`'s) -> ModelBatch.

    Reads "encoder_tokens"/"encoder_mask" (the feature cache; ``grid`` from its meta.json) or
    "audio"/"audio_lengths", and "caption" (training rows) or "references" (clip rows), "retrieved",
    "fname". Tensors are copies: Ray's batches are read-only.
    """
    import torch

    text: dict[str, Any] = {
        "fname": [str(f) for f in batch["fname"]],
        "retrieved": [[str(c) for c in hits] for hits in batch["retrieved"]],
    }
    if "caption" in batch:
        text["captions"] = [str(c) for c in batch["caption"]]
    if "references" in batch:
        text["references"] = [[str(r) for r in refs] for refs in batch["references"]]
        text["captions"] = [refs[0] for refs in text["references"]]  # the loss target of a clip row
    if "encoder_tokens" in batch:
        if grid is None:
            raise ValueError("a batch of encoder_tokens needs the feature cache's grid (bands, time)")
        tokens = torch.tensor(np.asarray(batch["encoder_tokens"], dtype=np.float32))  # (B, N, D)
        mask = torch.tensor(np.asarray(batch["encoder_mask"], dtype=bool))  # (B, N)
        return ModelBatch.from_features(tokens, mask, (grid[0], grid[1]), **text)
    audio = torch.tensor(np.asarray(batch["audio"], dtype=np.float32))  # (B, S)
    lengths = torch.tensor(np.asarray(batch["audio_lengths"], dtype=np.int64))  # (B,)
    return ModelBatch.from_waveforms(audio, lengths, **text)
