"""Caption text rules and the tiny preset's tokenizer.

One rule turns any caption into the form the model is trained on and generates
(`normalize_caption`): lowercase, punctuation dropped (apostrophes kept), whitespace collapsed.
Targets, retrieved captions and generated text all pass through it, so training and
post-processing can never disagree.

The tiny preset's tokenizer is word-level: one id per space-separated word, each newline its own
token (they separate the captions of the teacher prompt), trained with `tokenizers` on the training
captions plus the prompt text and wrapped as a `PreTrainedTokenizerFast` with pad/bos/eos/unk so
`save_pretrained` / `from_pretrained` work. One id per word keeps the sequences short and makes a
word copied from the prompt one token, the unit a 2-layer LM can learn to copy; a word's id never
depends on what precedes it, so a caption gets the same ids alone or after "Detailed: ".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: normalize_caption alone must not pay for transformers
    from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]

_NOT_WORD = re.compile(r"[^\w\s']")  # punctuation and symbols; apostrophes stay ("man's")
_SPACES = re.compile(r"\s+")


def normalize_caption(text: str) -> str:
    """The training-target form of a caption: lowercase, no punctuation, single spaces."""
    text = _NOT_WORD.sub(" ", text.lower())
    return _SPACES.sub(" ", text).strip()


def train_caption_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Word-level vocabulary of at most `vocab_size` ids over `texts` (captions and prompt text),
    wrapped for transformers. Words outside it (rare ones when capped) become <unk>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[ \t]+"), behavior="removed"),  # spaces only separate words
            pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),  # a newline is a token
        ]
    )
    # decoded words are joined by one space (the WordPiece decoder with no "##" pieces does that)
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tok.train_from_iterator(list(texts), trainer=trainer)
    # <bos> opens every text encoded with special tokens, as LLaMA's tokenizer does: prompts follow
    # the tokenizer's own rule (PromptTokens), and SmolLM2's, for one, adds none
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="right",
    )
