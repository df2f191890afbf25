"""Caption text rules and the tiny preset's tokenizer.

One rule turns any caption into the form the model is trained on and generates
(`normalize_caption`): lowercase, punctuation dropped (apostrophes kept), whitespace collapsed.
Targets, retrieved captions and generated text all pass through it, so training and
post-processing can never disagree.

The tiny preset's tokenizer is a byte-level BPE trained with `tokenizers` on the training
captions plus the prompt text (so the prompt words are a few tokens each), wrapped as a
`PreTrainedTokenizerFast` with pad/bos/eos so `save_pretrained` / `from_pretrained` work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: normalize_caption alone must not pay for transformers
    from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = [PAD, BOS, EOS]

_NOT_WORD = re.compile(r"[^\w\s']")  # punctuation and symbols; apostrophes stay ("man's")
_SPACES = re.compile(r"\s+")


def normalize_caption(text: str) -> str:
    """The training-target form of a caption: lowercase, no punctuation, single spaces."""
    text = _NOT_WORD.sub(" ", text.lower())
    return _SPACES.sub(" ", text).strip()


def train_caption_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE over `texts` (captions and prompt text), wrapped for transformers.

    No prefix space: a caption is tokenised on its own after the prompt, the same way in
    pretraining, training and generation, so its first word always gets the same ids.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    # transformers 5 does not add the decoder: without it decoded text keeps the "Ġ" markers.
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        padding_side="right",
    )
