"""A CED-style spectrogram transformer: log-mel -> 16x16 patches -> ViT blocks -> band-major tokens.

Shared by `CEDEncoder` (the real CED-base layout, loaded from the original checkpoint) and
`TinyAudioEncoder` (the same architecture at toy width). Attribute names follow the original CED
code (RicherMans/CED, models/audiotransformer.py) so state-dict keys match the released
checkpoints: `front_end.0.*`, `init_bn.1.*`, `patch_embed.proj.*`, `time_pos_embed`,
`freq_pos_embed`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`, `norm`.

Two deliberate differences from the original forward pass, both so that batch items never
influence each other and padding never changes a real token:
- the dB floor (`top_db`) is computed per clip, not over the whole batch;
- attention ignores tokens that lie wholly in padding (a key-padding mask).
Inputs longer than `target_length` frames (1,012 = ~10 s for CED) are cut into chunks along time;
each chunk is encoded on its own and the chunks' tokens are concatenated along time per band.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from distillcaps.model.encoders.base import AudioEncoder, EncoderOutput, band_major_mask, full_lengths

SAMPLE_RATE = 16000


class LogMelFrontEnd(nn.Sequential):
    """CED's front end: 64-bin mel (n_fft 512, win 512, hop 160, 0-8 kHz) in dB, top_db 120 per clip."""

    def __init__(self, n_mels: int = 64, n_fft: int = 512, win_length: int = 512, hop_length: int = 160):
        super().__init__(
            torchaudio.transforms.MelSpectrogram(
                sample_rate=SAMPLE_RATE,
                n_fft=n_fft,
                win_length=win_length,
                hop_length=hop_length,
                f_min=0.0,
                f_max=8000.0,
                n_mels=n_mels,
                center=True,
            ),
            torchaudio.transforms.AmplitudeToDB(top_db=120),
        )
        self.hop_length = hop_length

    def forward(self, waveform: Tensor) -> Tensor:  # (B, S) -> (B, 1, n_mels, frames)
        if self[0].mel_scale.fb.dtype != torch.float32:  # a model-wide .to(bfloat16) reached the
            self.float()  # filterbank/window buffers: the front end always computes in float32
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            mel = self[0](waveform.float()).unsqueeze(1)
            # (B, 1, F, T): AmplitudeToDB packs dim 1 as channels, so the floor is per clip
            return self[1](mel)

    def num_frames(self, num_samples: Tensor) -> Tensor:
        return torch.where(num_samples > 0, num_samples // self.hop_length + 1, torch.zeros_like(num_samples))


class SwapChannelAndMel(nn.Module):
    """(B, C, F, T) <-> (B, F, C, T), so BatchNorm2d normalises each mel bin (CED's `init_bn`)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:  # (B, 1, F, T) -> (B, D, bands, time_patches)
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:  # (B, N, D), (B, N) bool
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, N, D/H)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block, as in CED (LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class PatchTransformerEncoder(AudioEncoder):
    def __init__(
        self,
        *,
        n_mels: int = 64,
        dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        target_length: int = 1012,  # frames per chunk; CED's positional table covers 1012 // 16 = 63
        bn_momentum: float = 0.01,  # CED's value
    ):
        super().__init__()
        if n_mels % patch_size:
            raise ValueError(f"n_mels {n_mels} must be a multiple of patch_size {patch_size}")
        if target_length < patch_size:
            raise ValueError(f"target_length {target_length} is shorter than one patch ({patch_size})")
        self.n_mels, self.dim, self.patch_size, self.target_length = n_mels, dim, patch_size, target_length
        self.bands = n_mels // patch_size
        self.front_end = LogMelFrontEnd(n_mels=n_mels)
        self.init_bn = nn.Sequential(
            SwapChannelAndMel(), nn.BatchNorm2d(n_mels, momentum=bn_momentum), SwapChannelAndMel()
        )
        self.patch_embed = PatchEmbed(dim, patch_size)
        self.time_pos_embed = nn.Parameter(torch.randn(1, dim, 1, target_length // patch_size) * 0.02)
        self.freq_pos_embed = nn.Parameter(torch.randn(1, dim, self.bands, 1) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(_init_weights)

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        if waveform.dim() != 2:
            raise ValueError(f"waveform must be (batch, samples), got shape {tuple(waveform.shape)}")
        lengths = full_lengths(waveform, lengths)
        spec = self.front_end(waveform).to(self.patch_embed.proj.weight.dtype)  # (B, 1, F, frames)
        spec = self.init_bn(spec)
        valid_frames = self.front_end.num_frames(lengths)  # (B,)
        return self.encode_spectrogram(spec, valid_frames)

    def encode_spectrogram(self, spec: Tensor, valid_frames: Tensor) -> EncoderOutput:
        """Normalised log-mel (B, 1, F, frames) -> tokens; long inputs are encoded chunk by chunk."""
        B, _, M, frames = spec.shape
        if frames < self.patch_size:  # shorter than one patch: pad so every clip gets a token
            spec = F.pad(spec, (0, self.patch_size - frames))
            frames = self.patch_size
        num_chunks = -(-frames // self.target_length)
        chunk_len = frames if num_chunks == 1 else self.target_length
        spec = F.pad(spec, (0, num_chunks * chunk_len - frames))
        chunks = spec.view(B, 1, M, num_chunks, chunk_len).permute(0, 3, 1, 2, 4)
        chunks = chunks.reshape(B * num_chunks, 1, M, chunk_len)  # batch item b -> rows b*n .. b*n+n-1

        chunk_patches = chunk_len // self.patch_size
        total_patches = self.time_patches_for(torch.tensor(frames)).item()
        valid_patches = self.time_patches_for(valid_frames).clamp(min=1)  # (B,)
        start = torch.arange(num_chunks, device=spec.device) * chunk_patches  # (n,)
        valid_in_chunk = (valid_patches[:, None] - start[None, :]).clamp(0, chunk_patches)  # (B, n)
        key_mask = band_major_mask(valid_in_chunk.reshape(-1), self.bands, chunk_patches)  # (B*n, N_c)
        key_mask[~key_mask.any(dim=1)] = True  # an all-padding chunk attends freely; its tokens are masked

        x = self.patch_embed(chunks)  # (B*n, D, bands, Tc)
        x = x + self.time_pos_embed[:, :, :, :chunk_patches] + self.freq_pos_embed
        x = x.flatten(2).transpose(1, 2)  # (B*n, bands*Tc, D), band-major
        for block in self.blocks:
            x = block(x, key_mask)
        x = self.norm(x)

        D = x.shape[-1]
        x = x.view(B, num_chunks, self.bands, chunk_patches, D).permute(0, 2, 1, 3, 4)
        x = x.reshape(B, self.bands, num_chunks * chunk_patches, D)[:, :, :total_patches]
        tokens = x.reshape(B, self.bands * total_patches, D)
        mask = band_major_mask(valid_patches.clamp(max=total_patches), self.bands, total_patches)
        return EncoderOutput(tokens=tokens, mask=mask, grid=(self.bands, total_patches))

    def time_patches_for(self, frames: Tensor) -> Tensor:
        """Time patches for a clip of `frames` frames: whole chunks, then the rest's full patches."""
        full, rest = frames // self.target_length, frames % self.target_length
        return full * (self.target_length // self.patch_size) + rest // self.patch_size


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
