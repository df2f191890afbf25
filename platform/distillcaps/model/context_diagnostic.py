"""Does the LM read the captions in its prompt? The premise of DistillCaps, measured.

The teacher is only a better model than the student if its LM uses the retrieved captions placed in
its prompt. This scores each caption of a split per token, in the exact training token layout
(`PromptTokens`; no audio tokens), after four contexts of `top_k` captions:

    own        other captions of the same clip      (what a perfect retrieval would give)
    retrieved  the clip's precomputed neighbours    (what the teacher sees)
    random     captions of another clip             (an LM that copies blindly gets worse)
    none       the student prompt alone

plus an induction probe: the loss on the second copy of a repeated random sequence of caption
words, from its second token on (copying in general; chance is about ln(number of words)). A LM
with the skill has `own` well below `none`, `random` well above `own`, and `retrieved` below
`none` (`SKILL_TARGETS`).

    diagnosis = diagnose_context(llm, tokens, clips, retrieved, top_k=3)
    diagnosis.context_ce["own"], diagnosis.unmet()
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from distillcaps.model.prompts import PromptTokens

CONTEXTS = ("own", "retrieved", "random", "none")
INDUCTION_WORDS = 10  # length of the random sequence before it repeats
INDUCTION_ROWS = 64


@dataclass(frozen=True)
class SkillTarget:
    """`left` must be below `right` by at least `margin` nats per token."""

    left: str
    right: str
    margin: float

    def met(self, ce: dict[str, float | None]) -> bool | None:
        a, b = ce.get(self.left), ce.get(self.right)
        if a is None or b is None:
            return None
        return a <= b - self.margin if self.margin else a < b

    def describe(self) -> str:
        return (
            f"{self.left} <= {self.right} - {self.margin:g}" if self.margin else f"{self.left} < {self.right}"
        )


# The faithful-miniature targets: the context helps (own), is used selectively (random), and what
# training actually shows the teacher (retrieved) helps too; copying works (induction <= 1 nat).
SKILL_TARGETS = (
    SkillTarget("own", "none", 0.3),
    SkillTarget("retrieved", "none", 0.0),
    SkillTarget("own", "random", 0.3),
)
INDUCTION_TARGET = 1.0


@dataclass
class ContextDiagnosis:
    llm: str
    context_ce: dict[str, float | None]  # context -> mean caption CE per token (None: not measured)
    induction_ce: float
    num_captions: int
    top_k: int
    targets: dict[str, bool | None] = field(default_factory=dict)  # target -> met (None: not measurable)

    def unmet(self) -> list[str]:
        return [name for name, ok in self.targets.items() if ok is False]

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        title = f"context diagnostic of {self.llm} ({self.num_captions} captions, top-{self.top_k} contexts)"
        return title + "\n" + self.markdown()

    def markdown(self) -> str:
        """The table and the targets, as docs/model.md shows them."""
        lines = ["| context | caption CE (nats/token) |", "| --- | --- |"]
        for name in CONTEXTS:
            value = self.context_ce.get(name)
            lines.append(f"| {name} | {'not measured' if value is None else f'{value:.3f}'} |")
        lines.append(f"| induction (2nd copy) | {self.induction_ce:.3f} |")
        lines.append("")
        for name, ok in self.targets.items():
            lines.append(f"- {'not measured' if ok is None else 'met' if ok else 'NOT MET'}: {name}")
        return "\n".join(lines)


@torch.no_grad()
def diagnose_context(
    llm: nn.Module,
    tokens: PromptTokens,
    clips: Sequence[Sequence[str]],
    retrieved: Sequence[Sequence[str]] | None,
    *,
    top_k: int = 3,
    max_captions: int = 500,
    batch_size: int = 16,
    seed: int = 0,
    name: str = "",
) -> ContextDiagnosis:
    """Score up to `max_captions` captions of `clips` (captions per clip) under each context.
    `retrieved[i]`: the neighbours' captions of clip i, best first (None: not measured)."""
    rng = random.Random(seed)
    usable = [i for i, clip in enumerate(clips) if len(clip) >= 2]  # `own` needs a second caption
    if len(usable) < 2:
        raise ValueError("the context diagnostic needs at least two clips with two or more captions")
    cases = [(i, j) for i in usable for j in range(len(clips[i]))]
    rng.shuffle(cases)
    cases = cases[:max_captions]

    contexts: dict[str, list[list[str] | None]] = {kind: [] for kind in CONTEXTS}
    targets = []
    for i, j in cases:
        target = clips[i][j]
        targets.append(target)
        contexts["own"].append([c for n, c in enumerate(clips[i]) if n != j][:top_k])
        other = rng.choice([n for n in usable if n != i])
        contexts["random"].append(list(clips[other])[:top_k])
        contexts["none"].append(None)
        if retrieved is not None:
            contexts["retrieved"].append(list(retrieved[i])[:top_k])

    was_training = llm.training
    llm.eval()
    try:
        ce: dict[str, float | None] = {}
        for kind in CONTEXTS:
            if not contexts[kind]:
                ce[kind] = None
                continue
            prefixes = tokens.prefix_ids(contexts[kind])
            rows, starts = [], []
            for prefix, target in zip(prefixes, targets):
                prompt = prefix + tokens.after_ids
                rows.append(prompt + tokens.caption_ids(target))
                starts.append(len(prompt))
            ce[kind] = mean_ce_from(llm, rows, starts, tokens.tokenizer.pad_token_id, batch_size)
        induction = induction_ce(llm, tokens, clips, rng, batch_size)
    finally:
        llm.train(was_training)

    met: dict[str, bool | None] = {t.describe(): t.met(ce) for t in SKILL_TARGETS}
    met[f"induction <= {INDUCTION_TARGET:g}"] = induction <= INDUCTION_TARGET
    return ContextDiagnosis(
        llm=name, context_ce=ce, induction_ce=induction, num_captions=len(cases), top_k=top_k, targets=met
    )


def induction_ce(
    llm: nn.Module, tokens: PromptTokens, clips: Sequence[Sequence[str]], rng: random.Random, batch_size: int
) -> float:
    """Loss on the second copy of repeated random sequences of the clips' caption words' ids, from
    its second token on: nothing announces where the repeat begins, so its first token is a guess."""
    words = sorted({w for clip in clips for c in clip for w in c.split()})
    rows, starts = [], []
    for _ in range(INDUCTION_ROWS):
        # the words as running text: a BPE tokenizer gives them their word-initial ids ("Ġdog")
        sequence = tokens.encode(" " + " ".join(rng.choice(words) for _ in range(INDUCTION_WORDS)))
        rows.append(tokens.bos + sequence + sequence)
        starts.append(len(tokens.bos) + len(sequence) + 1)
    return mean_ce_from(llm, rows, starts, tokens.tokenizer.pad_token_id, batch_size)


@torch.no_grad()
def mean_ce_from(
    llm: nn.Module, rows: list[list[int]], starts: list[int], pad_id: int, batch_size: int
) -> float:
    """Mean next-token CE per token over rows[i][starts[i]:] (each predicted from the position before)."""
    from distillcaps.model.llm import pad_right  # lazy: transformers, not needed to read a diagnosis

    device = next(llm.parameters()).device
    total, count = 0.0, 0
    for b in range(0, len(rows), batch_size):
        chunk, chunk_starts = rows[b : b + batch_size], starts[b : b + batch_size]
        ids, attention = pad_right(chunk, pad_id)  # (B, L) ids, (B, L) bool real tokens
        scored = attention.clone()  # (B, L): the positions whose token is scored
        for n, start in enumerate(chunk_starts):
            scored[n, :start] = False
        logits = llm(input_ids=ids.to(device), attention_mask=attention.long().to(device)).logits.float()
        per_token = F.cross_entropy(
            logits[:, :-1].transpose(1, 2), ids[:, 1:].to(device), reduction="none"
        )  # (B, L-1): CE of token l+1
        mask = scored[:, 1:].to(device)
        total += float(per_token[mask].sum())
        count += int(mask.sum())
    return total / count if count else math.nan
