"""`TinyAudioEncoder`: CED's architecture at toy width (128-d, 2 layers), for 2-core CPU runs.

A frozen random encoder carries little, so the tiny preset uses the audio tower of the tiny CLAP
(`distillcaps.retrieval.clap`), trained contrastively on the training split, the way CED is
pretrained on AudioSet. Saved as `config.json` + `model.safetensors` (never pickle).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from safetensors.torch import load_file, save_file

from distillcaps.model.encoders.base import load_state_dict_strict
from distillcaps.model.encoders.patch_transformer import PatchTransformerEncoder

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class TinyEncoderSettings:
    n_mels: int = 64  # same front end as CED, so presets differ only in the transformer
    dim: int = 128
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    patch_size: int = 16  # 16 mel bins x 16 frames (160 ms), as CED -> 4 bands
    target_length: int = 1012  # frames per chunk, as CED
    bn_momentum: float = 0.1  # CED's 0.01 is too slow for a few hundred training steps


class TinyAudioEncoder(PatchTransformerEncoder):
    def __init__(
        self,
        n_mels: int = 64,
        dim: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        target_length: int = 1012,
        bn_momentum: float = 0.1,
    ):
        super().__init__(
            n_mels=n_mels,
            dim=dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            target_length=target_length,
            bn_momentum=bn_momentum,
        )
        self.settings = TinyEncoderSettings(
            n_mels, dim, depth, num_heads, mlp_ratio, patch_size, target_length, bn_momentum
        )

    @classmethod
    def from_encoder_config(cls, encoder_cfg) -> TinyAudioEncoder:
        """A fresh (untrained) encoder sized by `cfg.model.encoder` (n_mels, dim, num_layers, num_heads)."""
        return cls(
            n_mels=encoder_cfg.n_mels,
            dim=encoder_cfg.dim,
            depth=encoder_cfg.num_layers,
            num_heads=encoder_cfg.num_heads,
        )

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(asdict(self.settings), indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> TinyAudioEncoder:
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"tiny audio encoder: {path} not found (expected save_pretrained output)"
                )
        raw = json.loads(config_path.read_text())
        known = {f.name for f in fields(TinyEncoderSettings)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{config_path}: unknown keys {unknown}")
        encoder = cls(**raw)
        load_state_dict_strict(encoder, load_file(str(weights_path)), source=str(weights_path))
        return encoder
