"""`CEDEncoder`: CED-base (Dinkel et al., 2023) re-implemented here, loading the original checkpoint.

State-dict keys and shapes match RicherMans/CED's `AudioTransformer` (e.g.
`audiotransformer_base_mAP_4999.pt`): the front end's computed buffers (`front_end.0.*`), `init_bn.1.*`
(per-mel BatchNorm), `patch_embed.proj`, `time_pos_embed` (1, D, 1, 63), `freq_pos_embed` (1, D, 4, 1),
`blocks.N.*`, `norm`, and the AudioSet head `outputlayer.{0,1}` (kept only so the keys match; the
captioner uses the tokens, not the 527 tag logits). CED-base: 768-d, 12 layers, 12 heads, 16x16
patches, 64 mels, 1,012-frame chunks. Every CED size uses 64-d heads, so `from_checkpoint` reads the
width, depth, mel bins, patch size and class count from the tensors and sets heads = dim // 64.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from distillcaps.model.encoders.base import load_state_dict_strict
from distillcaps.model.encoders.patch_transformer import PatchTransformerEncoder

CED_HEAD_DIM = 64
COMPUTED_BUFFERS = ("front_end.",)  # mel filterbank and STFT window: recomputed if a checkpoint lacks them


class CEDEncoder(PatchTransformerEncoder):
    def __init__(
        self,
        n_mels: int = 64,
        dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        target_length: int = 1012,
        num_classes: int = 527,
    ):
        super().__init__(
            n_mels=n_mels,
            dim=dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            target_length=target_length,
            bn_momentum=0.01,
        )
        self.outputlayer = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, num_heads: int | None = None, target_length: int = 1012
    ) -> CEDEncoder:
        """Build from an original CED state dict (`.pt` read with weights_only, or `.safetensors`)."""
        state = read_ced_state_dict(path)
        encoder = cls(
            **ced_dims_from_state_dict(state, path, num_heads=num_heads, target_length=target_length)
        )
        load_state_dict_strict(encoder, state, source=str(path), optional_prefixes=COMPUTED_BUFFERS)
        return encoder


def read_ced_state_dict(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CED checkpoint not found: {path} (set model.encoder.checkpoint)")
    if path.suffix == ".safetensors":
        raw = load_file(str(path))
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
        except (pickle.UnpicklingError, RuntimeError) as err:
            raise ValueError(
                f"{path}: cannot be read as a plain state dict with torch.load(weights_only=True) "
                f"(it holds Python objects beyond tensors; re-save just the state dict): {err}"
            ) from err
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):  # CED's training dumps wrap it
        raw = raw["model"]
    if not isinstance(raw, dict) or not all(isinstance(v, Tensor) for v in raw.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (optionally under 'model')")
    return raw


def ced_dims_from_state_dict(
    state: dict[str, Tensor], path: str | Path, *, num_heads: int | None, target_length: int
) -> dict:
    required = [
        "patch_embed.proj.weight",
        "init_bn.1.weight",
        "blocks.0.mlp.fc1.weight",
        "outputlayer.1.weight",
    ]
    absent = [k for k in required if k not in state]
    if absent:
        raise ValueError(f"{path}: not a CED state dict, missing keys {absent}")
    dim, _, patch_size, _ = state["patch_embed.proj.weight"].shape
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    heads = num_heads or max(1, dim // CED_HEAD_DIM)
    return dict(
        n_mels=state["init_bn.1.weight"].shape[0],
        dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / dim,
        patch_size=patch_size,
        target_length=target_length,
        num_classes=state["outputlayer.1.weight"].shape[0],
    )
