"""One clip the model cannot take fails only its own request (distillcaps.serving.app.caption_group),
without Ray: the batch's other clips are captioned, and the error names no internals."""

from __future__ import annotations

import numpy as np

from distillcaps.serving.app import caption_group
from distillcaps.serving.captioner import RetrievalUnavailable
from distillcaps.serving.options import CaptionOptions


class FailsOnShortClips:
    """A captioner whose model raises, for the whole batch, when any clip has < 257 samples (as the
    log-mel front end's reflect padding does)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def caption(self, waves, rag, decoding):
        self.calls.append(len(waves))
        if any(w.shape[0] < 257 for w in waves):
            raise RuntimeError(
                "Padding size should be less than the corresponding input dimension /secret/path"
            )
        return [f"{w.shape[0]} samples" for w in waves]


def test_a_failing_clip_fails_alone_and_the_rest_of_its_batch_is_captioned():
    captioner = FailsOnShortClips()
    waves = [np.zeros(32_000, np.float32)] * 7 + [np.zeros(100, np.float32)]

    answers = caption_group(captioner, waves, CaptionOptions())

    assert answers[:7] == [{"caption": "32000 samples", "rag": False}] * 7
    assert answers[7] == {"error": "the model failed on this clip", "kind": "caption_failed", "status": 500}
    assert captioner.calls == [8] + [1] * 8  # the batch, then each clip alone


def test_a_batch_that_succeeds_is_one_call_and_retrieval_errors_are_not_retried():
    captioner = FailsOnShortClips()
    assert len(caption_group(captioner, [np.zeros(1600, np.float32)] * 3, CaptionOptions())) == 3
    assert captioner.calls == [3]

    class NoDatastore:
        def caption(self, waves, rag, decoding):
            raise RetrievalUnavailable("rag=true needs a deployed datastore")

    answers = caption_group(NoDatastore(), [np.zeros(1600, np.float32)] * 2, CaptionOptions(rag=True))
    assert [a["kind"] for a in answers] == ["retrieval_unavailable"] * 2 and answers[0]["status"] == 409
