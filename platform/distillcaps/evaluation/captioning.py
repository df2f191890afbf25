"""Caption clips with a loaded model: the one function behind every caller that captions.

    caption_clips(model, batches, rag=False)                        # the student prompt
    caption_clips(model, batches, rag=True)                         # the teacher's: batch.retrieved
    caption_clips(model, batches, rag=True, retriever=r, top_k=3)   # the teacher's: online retrieval

Evaluation (`evaluate.caption_records`, precomputed retrieval), the experiments' splits and
inference timing (`experiments/captioning.py`, online retrieval), the serving backend and through it
the batch captioner (`serving/captioner.py`) and `distillcaps caption` call it. Each caller builds
its own batches (`ModelBatch`): how many clips a batch holds and how its audio is cropped are the
caller's; what is done with a batch is this function's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from distillcaps.data.batches import ModelBatch

if TYPE_CHECKING:
    from distillcaps.model.config import GenerationConfig
    from distillcaps.model.distillcaps_model import DistillCapsModel
    from distillcaps.retrieval.retriever import Retriever


def caption_clips(
    model: DistillCapsModel,
    batches: Iterable[ModelBatch],
    *,
    rag: bool,
    retriever: Retriever | None = None,
    top_k: int | None = None,
    generation: GenerationConfig | None = None,
) -> list[str]:
    """One caption per row of each batch, in order.

    ``rag``: the teacher prompt, with the retrieved captions of ``batch.retrieved`` or, given a
    ``retriever``, retrieved online for the batch's audio (``top_k`` per clip; one encoder pass for
    caption and query where the encoder is the CLAP's audio tower). ``generation``: None decodes
    with the model's ``model.generation``.
    """
    import torch

    from distillcaps.retrieval.online import caption_with_retrieval  # lazy: torch and the encoders

    online = rag and retriever is not None
    if online and top_k is None:
        raise ValueError("online retrieval needs top_k, the captions to retrieve per clip")
    captions: list[str] = []
    with torch.inference_mode():
        for batch in batches:
            if online:
                audio = batch.require("audio", "online retrieval (the CLAP query)")
                found = caption_with_retrieval(
                    model, retriever, audio, batch.audio_lengths, top_k, generation
                )
                captions.extend(found)
            else:
                captions.extend(model.generate(batch, rag=rag, generation=generation))
    return captions
