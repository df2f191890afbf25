"""Prompt assembly: where audio tokens land, caption alignment, padding sides, text normalisation."""

from __future__ import annotations

import torch
from assembly_fixtures import CAPTIONS, PROMPT_TEXT
from torch import nn

from distillcaps.model.config import PromptConfig
from distillcaps.model.prompts import PromptBuilder
from distillcaps.model.tokenizer import normalize_caption, train_caption_tokenizer

H = 8


def builder() -> PromptBuilder:
    tokenizer = train_caption_tokenizer(CAPTIONS + PROMPT_TEXT * 5, 300)
    torch.manual_seed(0)
    return PromptBuilder(tokenizer, PromptConfig(), nn.Embedding(len(tokenizer), H))


def test_normalize_caption_lowercases_and_drops_punctuation():
    assert normalize_caption("  A Dog barks, twice!  The man's dog.\n") == "a dog barks twice the man's dog"


def test_student_prompt_places_audio_and_aligns_caption_tokens():
    b = builder()
    audio = torch.randn(2, 3, H)
    audio_mask = torch.tensor([[True, True, True], [True, False, False]])  # clip 2 has one audio token
    captions = ["A dog barks twice near a fence.", "rain falls"]
    p = b.build(audio, audio_mask, captions=captions)
    emb = b.embed_tokens.weight
    before = [b.tokenizer.bos_token_id] + b.encode("Describe the detail of this audio:")
    for i, n_audio in enumerate([3, 1]):
        start = len(before)
        assert torch.equal(p.inputs_embeds[i, :start], emb[before])
        assert torch.equal(p.inputs_embeds[i, start : start + n_audio], audio[i, :n_audio])
        # the logits at caption_positions[c] predict caption token c: the input at the next position
        n = int(p.caption_mask[i].sum())
        targets = p.caption_targets[i, :n]
        assert targets[-1].item() == b.tokenizer.eos_token_id
        assert b.tokenizer.decode(targets[:-1]) == normalize_caption(captions[i])
        next_inputs = p.inputs_embeds[i, p.caption_positions[i, : n - 1] + 1]
        assert torch.equal(next_inputs, emb[targets[:-1]])
        # the first caption token is predicted by the last prompt position (before it: "Detailed: ")
        last_prompt = p.caption_positions[i, 0]
        assert torch.equal(p.inputs_embeds[i, last_prompt], emb[b.after_ids[-1]])
        assert (
            p.attention_mask[i, : last_prompt + n + 1].all()
            and not p.attention_mask[i, last_prompt + n + 1 :].any()
        )


def test_teacher_prompt_lists_the_retrieved_captions_before_the_student_prompt():
    b = builder()
    text = b.teacher_text(["Rain falls.", "a DOG barks"])
    assert text == "Similar audios sound like:\n\nrain falls\n\na dog barks\n\n"
    audio, mask = torch.randn(1, 2, H), torch.ones(1, 2, dtype=torch.bool)
    student = b.build(audio, mask, captions=["rain falls"])
    teacher = b.build(audio, mask, captions=["rain falls"], retrieved=[["rain falls", "a dog barks"]])
    extra = teacher.inputs_embeds.shape[1] - student.inputs_embeds.shape[1]
    assert extra == len(b.encode(text + "Describe the detail of this audio:")) - len(
        b.encode("Describe the detail of this audio:")
    )
    assert torch.equal(teacher.caption_targets, student.caption_targets)
    assert torch.equal(teacher.caption_positions, student.caption_positions + extra)


def test_generation_prompts_are_left_padded_and_padding_never_matters():
    b = builder()
    audio = torch.randn(2, 4, H)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    p = b.build(audio, mask, padding_side="left")
    last = b.embed_tokens.weight[b.after_ids[-1]]
    assert torch.equal(p.inputs_embeds[:, -1], last.expand(2, -1))
    assert p.attention_mask[1, :2].sum() == 0 and p.attention_mask[1, 2:].all()
    # garbage in padded audio slots changes nothing that attention sees
    noisy = audio.clone()
    noisy[1, 2:] = 1e4
    q = b.build(noisy, mask, padding_side="left")
    assert torch.equal(p.inputs_embeds[p.attention_mask.bool()], q.inputs_embeds[q.attention_mask.bool()])


def byte_level_bpe():
    """A GPT-2-style tokenizer (byte-level BPE, SmolLM2's and LLaMA-3's kind), trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(CAPTIONS + PROMPT_TEXT * 5, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def test_a_caption_gets_the_ids_it_has_after_the_prompt_in_one_piece():
    """With a BPE tokenizer, encoding "Detailed: " and "a dog" apart gives a lone space id and a
    word-start id never seen in running text; the caption must get the ids of the joint text."""
    from distillcaps.model.prompts import PromptTokens

    for tokenizer in (byte_level_bpe(), train_caption_tokenizer(CAPTIONS + PROMPT_TEXT, 300)):
        tokens = PromptTokens(tokenizer, PromptConfig())
        caption = "a dog barks twice near a fence"
        joint = tokenizer("\n---\nDetailed: " + caption, add_special_tokens=False).input_ids
        assert tokens.after_ids + tokens.caption_ids(caption)[:-1] == joint
        assert tokenizer.decode(tokens.caption_ids(caption)[:-1]).strip() == caption


def test_a_prompt_opens_with_bos_only_where_the_tokenizer_adds_one_itself():
    """LLaMA's tokenizer (and the tiny one) open a text with <bos>; SmolLM2's adds none, and a
    prompt that began with its <bos> ("<|im_start|>") would not be the text it was trained on."""
    from distillcaps.model.prompts import PromptTokens

    tiny = train_caption_tokenizer(CAPTIONS + PROMPT_TEXT, 300)
    assert tiny("a dog").input_ids[0] == tiny.bos_token_id
    assert PromptTokens(tiny, PromptConfig()).prefix_ids([None])[0][0] == tiny.bos_token_id
    bpe = byte_level_bpe()
    assert bpe("a dog").input_ids[0] != bpe.bos_token_id
    student = PromptTokens(bpe, PromptConfig()).prefix_ids([None])[0]
    assert student == bpe("Describe the detail of this audio:", add_special_tokens=False).input_ids
