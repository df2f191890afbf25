"""The real Serve app on 127.0.0.1 serving a real tiny DistillCaps checkpoint from an MLflow registry:
captions over HTTP, every bad input, rag, reconfigure to other versions, the page in Chromium."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from serving_helpers import MODEL_NAME, encode, free_port, serving_options, tone

from distillcaps.data.audio import pad_waveforms
from distillcaps.serving.captioner import Captioner
from distillcaps.serving.options import DecodingOptions
from distillcaps.serving.upload import AudioLimits, decode_audio

CHROMIUM = Path("/usr/bin/chromium")
LIMITS = AudioLimits(max_bytes=1_000_000, max_duration_s=5.0)


@pytest.fixture(scope="module")
def service(local_ray, model_registry):
    from ray import serve

    port = free_port()
    for attempt in range(3):  # on a loaded host the controller can give up on a slow proxy start
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            break
        except Exception:
            serve.shutdown()
            if attempt == 2:
                raise
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    service = SimpleNamespace(url=f"http://127.0.0.1:{port}/", client=client, registry=model_registry)
    deploy(service, serving_options(model_registry))
    wait_for(service, lambda info: info.get("version") == "1")
    yield service
    client.close()
    serve.shutdown()


def deploy(service, options: dict) -> None:
    """Deploy as a Serve config (like serve/config.yaml): user_config changes then apply in place."""
    from distillcaps.serving.app import deploy_config, serve_config

    deploy_config(serve_config(options))


@pytest.fixture(scope="module")
def reference(model_registry):
    """The same checkpoints loaded in this process: what the service must answer."""
    return {v: Captioner.from_uri(str(model_registry[v])) for v in ("v1", "v2")}


def expected(captioner: Captioner, audio: bytes, options: DecodingOptions | None = None) -> str:
    return captioner.caption([decode_audio(audio, LIMITS).waveform], False, options)[0]


def post_raw(service, body: bytes, content_type: str = "audio/wav", **params) -> httpx.Response:
    return service.client.post(
        "/v1/captions", content=body, headers={"content-type": content_type}, params=params
    )


def test_seven_good_clips_and_a_100_sample_clip_sent_together_get_seven_captions_and_one_422(
    service, reference
):
    good = [encode(tone(200.0 * (i + 1), 16_000, 2.0)) for i in range(7)]
    short = encode(tone(440.0, 16_000, 100 / 16_000))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: post_raw(service, body), [*good[:3], short, *good[3:]]))
    assert [a.status_code for a in answers] == [200, 200, 200, 422, 200, 200, 200, 200]
    assert answers[3].json()["kind"] == "too_short"
    for body, answer in zip(good, answers[:3] + answers[4:]):
        assert answer.json()["caption"] == expected(reference["v1"], body)


def test_caption_a_wav_from_the_registry_champion(service, reference):
    audio = encode(tone(440.0))

    response = post_raw(service, audio)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["caption"] == expected(reference["v1"], audio)
    assert body["caption"].strip()
    assert body["rag"] is False
    assert body["model"] == {"name": MODEL_NAME, "version": "1"}
    assert body["latency_ms"] > 0


@pytest.mark.parametrize(
    ("fmt", "sample_rate", "channels"), [("WAV", 44_100, 2), ("FLAC", 22_050, 1), ("OGG", 48_000, 2)]
)
def test_multipart_upload_any_rate_and_channels(service, reference, fmt, sample_rate, channels):
    audio = encode(tone(300.0, sample_rate, 1.0, channels), sample_rate, fmt)

    response = service.client.post(
        "/v1/captions", files={"audio": (f"clip.{fmt.lower()}", audio, "application/octet-stream")}
    )

    assert response.status_code == 200, response.text
    assert response.json()["caption"] == expected(reference["v1"], audio)


def test_healthz_and_model_info(service):
    health = service.client.get("/healthz")
    info = service.client.get("/v1/model").json()

    assert health.status_code == 200
    assert health.json()["model"] == {"name": MODEL_NAME, "version": "1"}
    assert (info["name"], info["version"], info["backend"]) == (MODEL_NAME, "1", "distillcaps")
    assert info["config"]["encoder"] == "tiny" and info["config"]["generation"]["max_new_tokens"] == 8
    assert info["rag_available"] is False


def test_rag_without_a_datastore_is_a_clear_4xx(service):
    response = post_raw(service, encode(tone()), rag="true")

    assert response.status_code == 409
    assert "retrieval is not available" in response.json()["error"]


def bad_inputs() -> list[tuple[str, dict, int, str]]:
    """(what, request kwargs, status, error kind); the test app's limits are 1 MB and 5 s."""
    good = encode(tone())
    nan_wav = encode(np.full((1600, 1), np.nan, dtype=np.float32), subtype="FLOAT")
    flac = encode(tone(), fmt="FLAC")
    wav = {"content-type": "audio/wav"}
    return [
        ("not audio", {"content": b"hello, this is a text file" * 4, "headers": wav}, 415, "not_audio"),
        ("truncated wav", {"content": good[: len(good) // 2], "headers": wav}, 422, "truncated_audio"),
        ("corrupt flac", {"content": flac[: len(flac) // 2], "headers": wav}, 422, "corrupt_audio"),
        ("empty body", {"content": b"", "headers": wav}, 400, "empty_body"),
        (
            "zero-length signal",
            {"content": encode(np.zeros((0, 1), np.float32)), "headers": wav},
            422,
            "no_samples",
        ),
        ("all-NaN signal", {"content": nan_wav, "headers": wav}, 422, "non_finite"),
        ("over the size limit", {"content": b"\0" * 1_000_001, "headers": wav}, 413, "too_large"),
        ("over the duration limit", {"content": encode(tone(seconds=6.0)), "headers": wav}, 422, "too_long"),
        (
            "unsupported content type",
            {"content": good, "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_content_type",
        ),
        (
            "multipart without a file",
            {"data": {"rag": "false"}, "files": {"other": ("x.txt", b"x")}},
            400,
            "no_file",
        ),
        (
            "num_beams over the limit",
            {"content": good, "headers": wav, "params": {"num_beams": 9}},
            422,
            "bad_option",
        ),
        (
            "max_new_tokens zero",
            {"content": good, "headers": wav, "params": {"max_new_tokens": 0}},
            422,
            "bad_option",
        ),
        (
            "rag not a boolean",
            {"content": good, "headers": wav, "params": {"rag": "maybe"}},
            422,
            "bad_option",
        ),
        (
            "unknown option",
            {"content": good, "headers": wav, "params": {"temperature": "2"}},
            422,
            "bad_option",
        ),
    ]


def test_every_bad_input_gets_a_4xx_and_the_replica_keeps_serving(service, reference):
    for what, kwargs, status, kind in bad_inputs():
        response = service.client.post("/v1/captions", **kwargs)
        assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
        body = response.json()
        assert body["kind"] == kind, f"{what}: {body}"
        assert body["error"], f"{what}: no message"

    audio = encode(tone(3000.0))
    after = post_raw(service, audio)
    assert after.status_code == 200, after.text
    assert after.json()["caption"] == expected(reference["v1"], audio)


def test_decoding_options_within_limits_are_applied(service, reference):
    audio = encode(tone(200.0))

    response = post_raw(service, audio, num_beams=2, max_new_tokens=3)

    assert response.status_code == 200, response.text
    want = expected(reference["v1"], audio, DecodingOptions(num_beams=2, max_new_tokens=3))
    assert response.json()["caption"] == want


def test_concurrent_requests_share_batches(service):
    clips = [encode(tone(100.0 + 50 * i)) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda clip: post_raw(service, clip), clips))

    assert [r.status_code for r in responses] == [200] * 16
    sizes = [r.json()["batch_size"] for r in responses]
    assert max(sizes) > 1  # some requests were captioned by one shared generate call
    assert max(sizes) <= 8  # ServingConfig.max_batch_size


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_page_in_headless_chromium_shows_the_caption(service, tmp_path):
    from playwright.sync_api import sync_playwright

    wav = tmp_path / "tone.wav"
    wav.write_bytes(encode(tone(3000.0, 44_100, 1.0, 2), 44_100))
    want = service.client.post("/v1/captions", files={"audio": ("tone.wav", wav.read_bytes())}).json()[
        "caption"
    ]
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page()
            page.goto(service.url)
            page.set_input_files("#file", str(wav))
            page.click("#caption-button")
            page.wait_for_selector("#caption.done", timeout=60_000)
            caption = page.text_content("#caption")
            meta = page.text_content("#meta")
        finally:
            browser.close()

    assert caption == want
    assert f"model {MODEL_NAME} v1" in meta and "without retrieval" in meta and " ms" in meta


def test_reconfigure_switches_to_another_version_without_restart(service, reference):
    before = service.client.get("/v1/model").json()
    deploy(service, serving_options(service.registry, model_uri=f"models:/{MODEL_NAME}/2"))
    after = wait_for(service, lambda info: info.get("version") == "2")
    audio = encode(tone(440.0))
    response = post_raw(service, audio)

    assert after["replica_id"] == before["replica_id"]  # reconfigure(), not a new replica
    assert response.status_code == 200, response.text
    assert response.json()["model"] == {"name": MODEL_NAME, "version": "2"}
    assert response.json()["caption"] == expected(reference["v2"], audio)


def test_rag_true_uses_the_deployed_datastore(service):
    """Version 3 is the stand-in backend with a datastore (a real CLAP datastore is too slow here)."""
    options = serving_options(service.registry, model_uri=f"models:/{MODEL_NAME}/3", backend="stand-in")
    deploy(service, {**options, "retrieval": True})
    info = wait_for(service, lambda info: info.get("version") == "3")

    response = post_raw(service, encode(tone(100.0)), rag="true")

    assert info["rag_available"] is True
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rag"] is True and body["model"]["version"] == "3"
    assert body["caption"] == "a loud low tone (v3), like a low hum of an engine"


def deploy_checkpoint(service, checkpoint: Path, retrieval: bool) -> dict:
    options = serving_options(service.registry, model_uri=str(checkpoint), retrieval=retrieval)
    deploy(service, options)
    return wait_for(
        service, lambda i: i.get("uri") == str(checkpoint) and i.get("rag_available") is retrieval
    )


def test_rag_true_with_the_real_retriever_and_datastore(service, rag_checkpoint):
    """A real checkpoint whose config has a datastore, deployed with retrieval: true: the replica
    builds Retriever.from_config (tiny-clap, caption datastore, exact index) and rag=true uses it."""
    info = deploy_checkpoint(service, rag_checkpoint, retrieval=True)
    audio = encode(tone(440.0))

    response = post_raw(service, audio, rag="true")

    assert info["config"]["clap"] == "tiny-clap" and info["rag_unavailable_reason"] is None
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rag"] is True
    assert body["model"]["name"] == rag_checkpoint.name
    reference = Captioner.from_uri(str(rag_checkpoint), retrieval=True)
    waveform = decode_audio(audio, LIMITS).waveform
    assert body["caption"] == reference.caption([waveform], rag=True)[0]
    retrieved = reference.backend.retriever.retrieve(*pad_waveforms([waveform]), 3)[0]
    assert len(retrieved) == 3 and all(isinstance(c, str) and c for c in retrieved)


def test_rag_true_without_the_datastore_deployed_is_a_409(service, rag_checkpoint):
    """The same checkpoint deployed with retrieval: false: rag=true is refused, rag=false works."""
    deploy_checkpoint(service, rag_checkpoint, retrieval=False)
    audio = encode(tone(440.0))

    refused = post_raw(service, audio, rag="true")
    plain = post_raw(service, audio, rag="false")

    assert refused.status_code == 409, refused.text
    assert refused.json()["kind"] == "retrieval_unavailable"
    assert "retrieval is not available" in refused.json()["error"]
    assert "retrieval: true" in refused.json()["error"]  # says how to turn it on
    assert plain.status_code == 200, plain.text
    assert plain.json()["rag"] is False


def test_a_failed_reconfigure_keeps_the_loaded_model_serving(service):
    before = service.client.get("/v1/model").json()
    options = serving_options(service.registry, model_uri=f"models:/{MODEL_NAME}/99")
    deploy(service, options)
    info = wait_for(service, lambda i: bool(i.get("load_error")))

    assert info["version"] == before["version"]
    assert "models:/distillcaps-student/99" in info["load_error"]
    assert service.client.get("/healthz").status_code == 200


def wait_for(service, done, attempts: int = 600) -> dict:
    info: dict = {}
    for _ in range(attempts):
        try:
            response = service.client.get("/v1/model")
            info = response.json() if response.headers.get("content-type") == "application/json" else {}
        except httpx.HTTPError as err:  # the proxy is up before the app is
            info = {"error": repr(err)}
        if done(info):
            return info
        time.sleep(0.5)
    raise AssertionError(f"the service never reached the expected state: {info}")


def test_check_health_fails_without_a_model():
    from distillcaps.serving.app import CaptionModel

    replica = CaptionModel.func_or_class()  # no user_config yet: nothing loaded

    with pytest.raises(RuntimeError, match="no model is loaded"):
        replica.check_health()


# ---------------------------------------------------------------------------------------------
# Fuzz: uploads no client should send, next to ones every client sends


def crafted_wav(channels: int, rate: int, bits: int, frames_declared: int, payload: int) -> bytes:
    """A WAV whose header says anything (0-16 channels, any rate, any length) over `payload` bytes."""
    import struct

    block = max(channels * bits // 8, 1)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    data_size = frames_declared * block
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_size)
    return b"RIFF" + struct.pack("<I", len(body) + payload) + body + bytes(payload)


def encoded(fmt: str, channels: int, rate: int, seconds: float, keep: float) -> bytes:
    """Audio written by libsndfile in `fmt`, cut to the first `keep` of its bytes."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    try:
        sf.write(buffer, np.zeros((int(rate * seconds), channels), np.float32), rate, format=fmt)
    except Exception:  # a combination the format cannot hold: send what a careless client might
        return b"RIFF\0\0\0\0WAVE"
    data = buffer.getvalue()
    return data[: max(1, int(len(data) * keep))]


def test_fuzzed_uploads_get_a_json_4xx_or_a_caption_and_good_requests_beside_them_are_answered(service):
    import threading

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    good = encode(tone(440.0, 16_000, 1.0))
    good_statuses: list[int] = []
    stop = threading.Event()

    def good_client() -> None:
        with httpx.Client(base_url=service.client.base_url, timeout=120) as client:
            while not stop.is_set():
                response = client.post("/v1/captions", content=good, headers={"content-type": "audio/wav"})
                good_statuses.append(response.status_code if response.json().get("caption") else -1)

    uploads = st.one_of(
        st.binary(max_size=2048),
        st.builds(
            crafted_wav,
            channels=st.integers(0, 16),
            rate=st.one_of(st.sampled_from([1, 8_000, 16_000, 384_000]), st.integers(1, 1_000_000)),
            bits=st.sampled_from([8, 16, 24, 32]),
            frames_declared=st.integers(0, 2_000_000),
            payload=st.integers(0, 64_000),
        ),
        st.builds(
            encoded,
            fmt=st.sampled_from(["WAV", "FLAC", "OGG", "AIFF", "PAF", "AU", "CAF", "W64"]),
            channels=st.integers(1, 12),
            rate=st.sampled_from([8_000, 16_000, 22_050, 48_000, 96_000]),
            seconds=st.floats(0.0, 2.0),
            keep=st.floats(0.05, 1.0),
        ),
    )
    answered: list[int] = []

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(body=uploads)
    def bad_upload_is_answered(body: bytes) -> None:
        response = post_raw(service, body)
        answered.append(response.status_code)
        answer = response.json()  # never a plain-text body
        if response.status_code == 200:
            assert isinstance(answer["caption"], str)
        else:
            assert response.status_code in (400, 413, 415, 422, 503), answer
            assert answer["kind"] and answer["error"] and "/tmp" not in answer["error"]

    thread = threading.Thread(target=good_client)
    thread.start()
    try:
        bad_upload_is_answered()
    finally:
        stop.set()
        thread.join(timeout=120)
    assert len(answered) >= 60 and any(code >= 400 for code in answered)
    assert good_statuses and set(good_statuses) == {200}
    assert service.client.get("/healthz").status_code == 200
