"""Rows and batches that training, evaluation and captioning share, with no Ray in them.

    rows = split_rows(records, retrieved, per="caption")   # training: one row per caption
    batch = DecodeAudio(16_000, num_samples(cfg), random_crop=False)(numpy_batch)
    model_batch = to_model_batch(batch, grid)              # numpy rows -> the model's batch dict

`distillcaps.training.data_pipeline` runs `DecodeAudio` as a Ray Data stage; evaluation and
captioning call it directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
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
# Decoding and the model's batch


class DecodeAudio:
    """CPU stage: decode (soundfile), down-mix, resample to the model rate, crop or pad to a fixed length.

    Adds "audio" (B, S) float32 and "audio_lengths" (B,) int64 (valid samples before padding).
    Random crops (training without the feature cache) draw from one generator seeded by ``seed``;
    it lives as long as the instance (the worker process under ``run_stage``), so every epoch
    crops afresh.
    """

    def __init__(self, sample_rate: int, num_samples: int, random_crop: bool, seed: int = 0) -> None:
        import torch

        torch.set_num_threads(1)
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.random_crop = random_crop
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from distillcaps.data.audio import crop_or_pad, load_audio

        # Training rows come one per caption, a clip's rows side by side: decode each file once per
        # batch (5 captions per clip: 5x fewer decodes); each row still gets its own crop.
        decoded: dict[str, Any] = {}
        waves, lengths = [], []
        for path in batch["path"]:
            if path not in decoded:
                decoded[path] = load_audio(path, self.sample_rate)  # (S,)
            wave, length = crop_or_pad(
                decoded[path], self.num_samples, random_crop=self.random_crop, generator=self.generator
            )
            waves.append(wave.numpy())
            lengths.append(length)
        batch["audio"] = np.stack(waves).astype(np.float32)  # (B, S)
        batch["audio_lengths"] = np.asarray(lengths, dtype=np.int64)  # (B,)
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


def to_model_batch(batch: dict[str, np.ndarray], grid: tuple[int, int] | None) -> dict[str, Any]:
    """A numpy batch from Ray Data -> the model's batch dict (interface 5)."""
    import torch

    out: dict[str, Any] = {"fname": [str(f) for f in batch["fname"]]}
    if "encoder_tokens" in batch:
        out["encoder_tokens"] = torch.tensor(
            np.asarray(batch["encoder_tokens"], dtype=np.float32)
        )  # copies: Ray batches are read-only
        out["encoder_mask"] = torch.tensor(np.asarray(batch["encoder_mask"], dtype=bool))
        out["encoder_grid"] = tuple(grid)
    else:
        out["audio"] = torch.tensor(np.asarray(batch["audio"], dtype=np.float32))
        out["audio_lengths"] = torch.tensor(np.asarray(batch["audio_lengths"], dtype=np.int64))
    if "caption" in batch:
        out["captions"] = [str(c) for c in batch["caption"]]
    if "references" in batch:
        out["references"] = [[str(r) for r in refs] for refs in batch["references"]]
        out["captions"] = [refs[0] for refs in out["references"]]  # the loss target of a clip row
    out["retrieved"] = [[str(c) for c in hits] for hits in batch["retrieved"]]
    return out
