"""The tiny LM's pretraining rows: the training token layout, the four contexts, induction rows."""

from __future__ import annotations

import random

import pytest
from assembly_fixtures import CAPTIONS, PROMPT_TEXT

from distillcaps.model.config import PromptConfig
from distillcaps.model.prompts import PromptTokens
from distillcaps.model.tokenizer import train_caption_tokenizer
from distillcaps.standins.pretrain_corpus import CorpusMix, PretrainCorpus, text_neighbours

CLIPS = [
    ["a dog barks twice", "a dog barks near a fence", "a small dog barks"],
    ["rain falls on a roof", "heavy rain falls", "rain falls steadily"],
    ["a dog growls and barks", "a big dog barks loudly", "dog barking"],
    ["church bells ring", "bells ring in the distance", "a bell rings"],
]


@pytest.fixture(scope="module")
def tokens() -> PromptTokens:
    texts = [c for clip in CLIPS for c in clip] + CAPTIONS + PROMPT_TEXT
    return PromptTokens(train_caption_tokenizer(texts, 500), PromptConfig())


def test_a_document_is_a_training_row_without_audio(tokens):
    corpus = PretrainCorpus(CLIPS, tokens, CorpusMix())
    row = corpus.document("heavy rain falls", ["rain falls on a roof"])
    assert row == tokens.prefix_ids([["rain falls on a roof"]])[0] + tokens.after_ids + tokens.caption_ids(
        "heavy rain falls"
    )
    text = tokens.tokenizer.decode(row, skip_special_tokens=True)
    assert text.startswith("Similar audios sound like:") and text.endswith("Detailed: heavy rain falls")


def test_contexts_own_never_holds_the_target_neighbours_and_random_never_the_clip(tokens):
    corpus = PretrainCorpus(CLIPS, tokens, CorpusMix(max_context=3))
    rng = random.Random(0)
    for _ in range(200):
        clip = rng.randrange(len(CLIPS))
        target = CLIPS[clip][0]
        own = corpus.context(clip, "own", target, rng)
        assert own and target not in own and set(own) <= set(CLIPS[clip])
        for kind in ("neighbours", "random"):
            context = corpus.context(clip, kind, target, rng)
            assert 1 <= len(context) <= 3 and not set(context) & set(CLIPS[clip])
        assert corpus.context(clip, "none", target, rng) is None


def test_text_neighbours_rank_the_clips_that_share_words_first():
    neighbours = text_neighbours(CLIPS, pool=2)
    assert neighbours[0][0] == 2 and neighbours[2][0] == 0  # the two dog clips
    assert all(i not in row for i, row in enumerate(neighbours))


def test_induction_rows_write_a_random_word_sequence_twice(tokens):
    corpus = PretrainCorpus(CLIPS, tokens, CorpusMix(induction_share=1.0, induction_words=(4, 8)))
    batch = next(corpus.batches(8, random.Random(0)))
    special = {tokens.tokenizer.bos_token_id, tokens.tokenizer.eos_token_id, tokens.tokenizer.pad_token_id}
    for row in batch:
        body = row[1:-1]
        half = len(body) // 2
        assert row[0] == tokens.tokenizer.bos_token_id and row[-1] == tokens.tokenizer.eos_token_id
        assert 4 <= half <= 8 and body[:half] == body[half:] and not set(body) & special


def test_batches_group_rows_of_similar_length(tokens):
    corpus = PretrainCorpus(CLIPS, tokens, CorpusMix(induction_share=0.3))
    batches = corpus.batches(8, random.Random(1))
    spreads = [max(map(len, b)) - min(map(len, b)) for b in (next(batches) for _ in range(16))]
    rows = [corpus.row(random.Random(i)) for i in range(128)]
    assert sum(spreads) / len(spreads) < (max(map(len, rows)) - min(map(len, rows))) / 2
