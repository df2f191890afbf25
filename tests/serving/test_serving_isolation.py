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


def test_an_unexpected_error_is_a_json_500_that_names_no_internals():
    import asyncio
    import json

    from starlette.requests import Request

    from distillcaps.serving.app import _internal_error

    request = Request({"type": "http", "method": "POST", "path": "/v1/captions", "headers": []})
    response = asyncio.run(_internal_error(request, RuntimeError("/home/me/.cache/secret sqlite:///x.db")))
    body = json.loads(response.body)
    assert response.status_code == 500 and body["kind"] == "internal"
    assert "/home" not in response.body.decode() and "sqlite" not in response.body.decode()


def test_health_is_a_json_503_when_the_model_deployment_does_not_answer():
    import asyncio
    import json

    from distillcaps.serving.app import CaptionIngress

    class GoneReplica:
        class describe:  # noqa: N801 (a DeploymentHandle method's shape: handle.describe.remote())
            @staticmethod
            async def remote():
                raise RuntimeError("ActorDiedError: the replica is gone")

    ingress_class = CaptionIngress.func_or_class
    ingress = object.__new__(ingress_class)  # Serve's ingress wrapper runs __init__ inside a replica
    ingress.model = GoneReplica()
    response = asyncio.run(ingress_class.healthz(ingress))
    assert response.status_code == 503 and json.loads(response.body)["status"] == "unavailable"
