"""The service's failure paths, without Ray: one clip the model cannot take fails only its own request
(caption_group), unexpected errors and a gone model are JSON answers naming no internals, and a full
ingress or a late caption is a prompt JSON 503."""

from __future__ import annotations

from types import MethodType, SimpleNamespace

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


def test_an_unexpected_error_is_a_json_500_that_names_no_internals(tmp_path):
    import asyncio
    import json

    from starlette.requests import Request

    from distillcaps.serving.app import _internal_error

    request = Request({"type": "http", "method": "POST", "path": "/v1/captions", "headers": []})
    secret = tmp_path / "cache" / "secret"
    response = asyncio.run(_internal_error(request, RuntimeError(f"{secret} sqlite:///{secret}.db")))
    body = json.loads(response.body)
    assert response.status_code == 500 and body["kind"] == "internal"
    assert str(tmp_path) not in response.body.decode() and "sqlite" not in response.body.decode()


def test_health_is_a_json_503_when_the_model_deployment_does_not_answer():
    import asyncio
    import json

    from distillcaps.serving.app import CaptionIngress

    class GoneReplica:
        class describe:  # noqa: N801 (a DeploymentHandle method's shape: handle.describe.remote())
            @staticmethod
            async def remote():
                raise RuntimeError("ActorDiedError: the replica is gone")

    # the class's own methods on a plain object: Serve's ingress wrapper runs __init__ in a replica
    ingress = SimpleNamespace(model=GoneReplica())
    response = asyncio.run(CaptionIngress.func_or_class.healthz(ingress))
    assert response.status_code == 503 and json.loads(response.body)["status"] == "unavailable"


class SlowModel:
    """A model deployment handle whose captions take `seconds` (handle.caption.remote(...))."""

    def __init__(self, seconds: float) -> None:
        outer = self

        class caption:  # noqa: N801
            @staticmethod
            async def remote(waveform, options):
                import asyncio

                await asyncio.sleep(outer.seconds)
                return {"caption": "a tone", "rag": False, "model": {}, "batch_size": 1}

        self.seconds, self.caption = seconds, caption


def ingress_with(model, **options):
    from serving_helpers import encode, tone

    from distillcaps.serving.app import CaptionIngress
    from distillcaps.serving.config import ServingConfig
    from distillcaps.serving.upload import AudioLimits

    cls = CaptionIngress.func_or_class
    # the class's own methods on a plain object: Serve's ingress wrapper runs __init__ in a replica
    ingress = SimpleNamespace(model=model, cfg=ServingConfig(**options), pending=0, limits=AudioLimits())
    wav = encode(tone())

    async def read_upload(request):
        return wav, {}

    ingress._read_upload = read_upload
    ingress._caption = MethodType(cls._caption, ingress)
    return cls, ingress


def test_a_full_ingress_answers_a_json_503_at_once_and_a_late_caption_is_a_503_too():
    import asyncio
    import json

    cls, ingress = ingress_with(SlowModel(0.5), max_pending_requests=2)

    async def three_at_once():
        return await asyncio.gather(*(cls.captions(ingress, None) for _ in range(3)))

    answers = asyncio.run(three_at_once())
    assert sorted(a.status_code for a in answers) == [200, 200, 503]
    busy = next(a for a in answers if a.status_code == 503)
    assert json.loads(busy.body)["kind"] == "overloaded" and busy.headers["retry-after"] == "1"
    assert ingress.pending == 0

    cls, ingress = ingress_with(SlowModel(2.0), request_timeout_s=0.2)
    late = asyncio.run(cls.captions(ingress, None))
    assert late.status_code == 503 and json.loads(late.body)["kind"] == "timeout" and ingress.pending == 0
