"""What the tiny Llama is pretrained on: caption documents in the training token layout, drawn anew
for every batch, plus repeated random-word sequences.

LLaMA arrives able to use text placed in its prompt; a LM pretrained here on isolated captions does
not, and its teacher branch (the retrieved captions in the prompt) was no better than the audio-only
student. So every document is a training row without audio, tokenised by `PromptTokens` exactly as
training tokenises it:

    <bos> [Similar audios sound like:\\n\\n c1 \\n\\n c2 \\n\\n]
          Describe the detail of this audio: \\n---\\nDetailed: caption <eos>

with one of four contexts (`CONTEXT_KINDS`), k = 1..max_context captions:
    none       the student prompt alone
    own        other captions of the same clip (always agree with the target)
    neighbours captions of the clips whose captions share the most words with this clip's, the clip
               itself excluded: they agree in part, as CLAP-retrieved captions do in training (the
               leakage guard removes the clip's own), so the LM learns to trust a context selectively
    random     captions of a random other clip (never help)
and, as `induction_share` of the rows, a random sequence of caption words written twice: the second
copy is predictable only by copying, the generic skill a 2-layer LM does not find from captions
alone (docs/model.md).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from distillcaps.model.prompts import PromptTokens

CONTEXT_KINDS = ("none", "own", "neighbours", "random")
NEIGHBOUR_POOL = 10  # a neighbour context draws from this many most similar clips (not always the best)


@dataclass
class CorpusMix:
    max_context: int = 3  # k is drawn from 1..max_context (the paper's top-k is 3)
    induction_share: float = 0.5  # rows that are a repeated random-word sequence (LLMConfig says why)
    induction_words: tuple[int, int] = (4, 16)  # length range of the sequence before it repeats


class PretrainCorpus:
    """Draws pretraining rows (token id lists) from the training clips' captions."""

    def __init__(self, clips: Sequence[Sequence[str]], tokens: PromptTokens, mix: CorpusMix) -> None:
        self.clips = [list(c) for c in clips if c]
        if len(self.clips) < 2:
            raise ValueError("the tiny LLM's pretraining corpus needs captions of at least two clips")
        self.tokens = tokens
        self.mix = mix
        self.neighbours = text_neighbours(self.clips, NEIGHBOUR_POOL)
        words = {w for clip in self.clips for c in clip for w in c.split()}
        self.word_ids = sorted(
            {i for w in words for i in tokens.encode(w)} - set(special_ids(tokens.tokenizer))
        )

    def batches(self, batch_size: int, rng: random.Random, group: int = 16) -> Iterator[list[list[int]]]:
        """An endless stream of batches of rows. Rows are drawn `group` batches at a time and batched
        by length: documents (~20-80 tokens) and induction rows padded together would double the work."""
        while True:
            rows = sorted((self.row(rng) for _ in range(batch_size * group)), key=len)
            batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
            rng.shuffle(batches)
            yield from batches

    def row(self, rng: random.Random) -> list[int]:
        if rng.random() < self.mix.induction_share:
            return self.induction_row(rng)
        clip = rng.randrange(len(self.clips))
        kind = rng.choice(CONTEXT_KINDS)
        target = rng.choice(self.clips[clip])
        return self.document(target, self.context(clip, kind, target, rng))

    def document(self, target: str, context: list[str] | None) -> list[int]:
        t = self.tokens
        return t.prefix_ids([context])[0] + t.after_ids + t.caption_ids(target)

    def context(self, clip: int, kind: str, target: str, rng: random.Random) -> list[str] | None:
        k = rng.randint(1, self.mix.max_context)
        if kind == "none":
            return None
        if kind == "own":
            others = [c for c in self.clips[clip] if c != target] or [target]
            return rng.sample(others, min(k, len(others)))
        if kind == "neighbours":
            pool = self.neighbours[clip]
            return [rng.choice(self.clips[n]) for n in rng.sample(pool, min(k, len(pool)))]
        other = (clip + rng.randrange(1, len(self.clips))) % len(self.clips)
        return [rng.choice(self.clips[other]) for _ in range(k)]

    def induction_row(self, rng: random.Random) -> list[int]:
        low, high = self.mix.induction_words
        sequence = [rng.choice(self.word_ids) for _ in range(rng.randint(low, high))]
        return self.tokens.bos + sequence + sequence + [self.tokens.tokenizer.eos_token_id]


def text_neighbours(clips: Sequence[Sequence[str]], pool: int) -> list[list[int]]:
    """For each clip, the `pool` other clips whose captions are most alike (tf-idf cosine of their
    words): the text-side stand-in for CLAP retrieval, which pretraining must not depend on."""
    vocab = {w: i for i, w in enumerate(sorted({w for clip in clips for c in clip for w in c.split()}))}
    counts = np.zeros((len(clips), len(vocab)), dtype=np.float32)  # (clips, words)
    for row, clip in enumerate(clips):
        for word, n in Counter(w for c in clip for w in c.split()).items():
            counts[row, vocab[word]] = n
    idf = np.log(len(clips) / (1.0 + (counts > 0).sum(axis=0)))  # (words,)
    weights = counts * idf
    weights /= np.linalg.norm(weights, axis=1, keepdims=True).clip(min=1e-9)
    similarity = weights @ weights.T  # (clips, clips)
    np.fill_diagonal(similarity, -np.inf)  # never the clip itself
    pool = max(1, min(pool, len(clips) - 1))
    return np.argsort(-similarity, axis=1, kind="stable")[:, :pool].tolist()


def special_ids(tokenizer) -> list[int]:
    return [
        i
        for i in (
            tokenizer.pad_token_id,
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.unk_token_id,
        )
        if i is not None
    ]
