"""Audio-caption data: records, readers, audio loading, rows and batches, the synthetic benchmark.

    from distillcaps.data import read_records, resolve_dataset_dir, split_rows, load_waveforms
    root = resolve_dataset_dir(cfg)                    # user data, or the cached synthetic set
    records = read_records(root, cfg.data.dataset_format, cfg.data.train_subset)
    rows = split_rows(records, retrieved, per="caption")   # one row per caption (Ray Data's items)
    audio, lengths = load_waveforms([r.path for r in records[:8]], 16_000, 160_000)  # (8, S), (8,)

Names are imported lazily: ``distillcaps.config`` imports ``distillcaps.data.config`` and must not
pay for torch (or hit an import cycle) on the way.
"""

from __future__ import annotations

from distillcaps.lazy_exports import lazy_exports

_EXPORTS = {
    "ClipRecord": "records",
    "DATASET_READERS": "records",
    "DatasetFormatError": "records",
    "read_records": "records",
    "BadAudioError": "audio",
    "check_audio": "audio",
    "crop_or_pad": "audio",
    "load_audio": "audio",
    "log_mel": "audio",
    "load_waveforms": "audio",
    "pad_waveforms": "audio",
    "DecodeAudio": "batches",
    "ModelBatch": "batches",
    "split_rows": "batches",
    "to_model_batch": "batches",
    "SkippedFile": "usable",
    "check_records": "usable",
    "usable_records": "usable",
    "cache_dir_for": "paths",
    "resolve_dataset_dir": "paths",
    "ensure_synthetic_dataset": "paths",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
