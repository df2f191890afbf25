"""The real Serve app on 127.0.0.1: captions over HTTP, every bad input, rag, registry, reconfigure, page."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from serving_helpers import MODEL_NAME, encode, free_port, standin_options, tone

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def service(local_ray, model_registry):
    from ray import serve

    from distillcaps.serving.app import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(standin_options(model_registry)), name="distillcaps", route_prefix="/")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", client=client, registry=model_registry)
    client.close()
    serve.shutdown()


def post_raw(service, body: bytes, content_type: str = "audio/wav", **params) -> httpx.Response:
    return service.client.post(
        "/v1/captions", content=body, headers={"content-type": content_type}, params=params
    )


def test_caption_a_wav_from_the_registry_champion(service):
    response = post_raw(service, encode(tone(440.0)))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["caption"] == "a loud middle tone (v1)"
    assert body["rag"] is False
    assert body["model"] == {"name": MODEL_NAME, "version": "1"}
    assert body["latency_ms"] > 0


@pytest.mark.parametrize(
    ("fmt", "sample_rate", "channels", "freq", "pitch"),
    [
        ("WAV", 44_100, 2, 100.0, "low"),
        ("FLAC", 22_050, 1, 440.0, "middle"),
        ("OGG", 48_000, 2, 3000.0, "high"),
    ],
)
def test_multipart_upload_any_rate_stereo_downmixed(service, fmt, sample_rate, channels, freq, pitch):
    audio = encode(tone(freq, sample_rate, 1.0, channels), sample_rate, fmt)
    response = service.client.post(
        "/v1/captions", files={"audio": (f"clip.{fmt.lower()}", audio, "application/octet-stream")}
    )

    assert response.status_code == 200, response.text
    assert response.json()["caption"] == f"a loud {pitch} tone (v1)"


def test_healthz_and_model_info(service):
    health = service.client.get("/healthz")
    info = service.client.get("/v1/model").json()

    assert health.status_code == 200
    assert health.json()["model"] == {"name": MODEL_NAME, "version": "1"}
    assert info["name"] == MODEL_NAME and info["version"] == "1"
    assert info["config"] == {"label": "v1", "datastore_size": 0}
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


def test_every_bad_input_gets_a_4xx_and_the_replica_keeps_serving(service):
    for what, kwargs, status, kind in bad_inputs():
        response = service.client.post("/v1/captions", **kwargs)
        assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
        body = response.json()
        assert body["kind"] == kind, f"{what}: {body}"
        assert body["error"], f"{what}: no message"

    after = post_raw(service, encode(tone(3000.0)))
    assert after.status_code == 200, after.text
    assert after.json()["caption"] == "a loud high tone (v1)"


def test_decoding_options_within_limits_are_applied(service):
    response = post_raw(service, encode(tone()), num_beams=2, max_new_tokens=3)

    assert response.status_code == 200, response.text
    assert response.json()["caption"] == "a loud middle"


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

    assert caption == "a loud high tone (v1)"
    assert "without retrieval" in meta and " ms" in meta


def test_reconfigure_switches_to_another_version_without_restart(service):
    from ray import serve

    from distillcaps.serving.app import build_app

    before = service.client.get("/v1/model").json()
    options = standin_options(service.registry, model_uri=f"models:/{MODEL_NAME}/2", retrieval=True)
    serve.run(build_app(options), name="distillcaps", route_prefix="/")
    after = wait_for_version(service, "2")

    assert after["replica_id"] == before["replica_id"]  # reconfigure(), not a new replica
    assert after["rag_available"] is True
    response = post_raw(service, encode(tone(100.0)), rag="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": MODEL_NAME, "version": "2"}
    assert body["rag"] is True
    assert body["caption"] == "a loud low tone (v2), like a low hum of an engine"


def wait_for_version(service, version: str, attempts: int = 120) -> dict:
    for _ in range(attempts):
        info = service.client.get("/v1/model").json()
        if info.get("version") == version:
            return info
        time.sleep(0.5)
    raise AssertionError(f"model version never became {version}: {info}")


def test_check_health_fails_without_a_model():
    from distillcaps.serving.app import CaptionModel

    replica = CaptionModel.func_or_class()  # no user_config yet: nothing loaded

    with pytest.raises(RuntimeError, match="no model is loaded"):
        replica.check_health()
