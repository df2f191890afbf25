"""A word-level vocabulary over the training captions: the tiny CLAP's text tokenizer.

Captions in this field are short, lower-case-able English with a small vocabulary, so whole words
are enough; unknown words map to [UNK] rather than failing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

PAD, UNK = "[PAD]", "[UNK]"
WORD = re.compile(r"[a-z0-9']+")


def words(caption: str) -> list[str]:
    return WORD.findall(caption.lower())


class WordVocab:
    def __init__(self, tokens: list[str]) -> None:
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD}, {UNK}; got {tokens[:2]}")
        self.tokens = tokens
        self.ids = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> WordVocab:
        counts = Counter(w for c in captions for w in words(c))
        kept = sorted(w for w, n in counts.items() if n >= min_count)
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, captions: list[str], max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ids (B, L) long, mask (B, L) bool valid; L = longest caption (<= max_words), >= 1."""
        rows = [[self.ids.get(w, 1) for w in words(c)][:max_words] or [1] for c in captions]
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.tokens))

    @classmethod
    def load(cls, path: Path) -> WordVocab:
        return cls(json.loads(Path(path).read_text()))
