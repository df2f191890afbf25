"""The Ray Serve application: a FastAPI ingress in front of a dynamically batched model deployment.

    ingress (CaptionIngress, FastAPI)          model (CaptionModel)
    POST /v1/captions -- decode + validate --> caption()  --@serve.batch--> Captioner.caption(list)
    GET /healthz, /v1/model ----------------> describe()
    GET / (static page)

The ingress owns HTTP, upload limits and decoding (CPU work that must not hold up a batch); the model
deployment owns the Captioner. ``user_config`` on the model deployment (a ServingConfig dict) is
applied by ``reconfigure``, which swaps the model (URI / version) and the batching parameters without
restarting the replica. ``check_health`` fails while no model is loaded.
"""

# No `from __future__ import annotations`: FastAPI must see real types on the ingress methods.
import asyncio
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from distillcaps.serving.captioner import Captioner, RetrievalUnavailable, caption_each
from distillcaps.serving.config import ServingConfig
from distillcaps.serving.options import CaptionOptions, parse_options
from distillcaps.serving.upload import AudioLimits, UploadError, check_content_type, decode_audio

logger = logging.getLogger("distillcaps.serving")

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and option fields around the file part
INGRESS_KEYS = (
    "max_upload_bytes",
    "max_duration_s",
    "max_num_beams",
    "max_new_tokens",
    "max_pending_requests",
    "request_timeout_s",
)
RETRY_AFTER_S = "1"
MODEL_KEYS = ("model_uri", "tracking_uri", "backend", "plugin_modules", "retrieval")  # change -> reload


@dataclass
class CaptionJob:
    waveform: np.ndarray  # (S,) float32, 16 kHz
    options: CaptionOptions


@serve.deployment(
    name="CaptionModel",
    ray_actor_options={"num_cpus": 0.25},
    max_ongoing_requests=64,  # must exceed max_batch_size, or batches can never fill
    health_check_period_s=5,
    health_check_timeout_s=30,
)
class CaptionModel:
    """Holds one Captioner; concurrent requests are grouped into one generate call by @serve.batch."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.captioner: Captioner | None = None
        self.cfg: ServingConfig | None = None
        self.load_error: str | None = None
        if config is not None:  # without a user_config, construction args configure the replica
            self.reconfigure(config)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        cfg = ServingConfig.from_dict(user_config)
        needs_reload = self.cfg is None or any(getattr(cfg, k) != getattr(self.cfg, k) for k in MODEL_KEYS)
        if needs_reload:
            try:
                captioner = Captioner.load(cfg)
            except Exception as err:
                self.load_error = f"{cfg.model_uri}: {type(err).__name__}: {err}"
                logger.error("model load failed: %s", self.load_error)
                if self.captioner is None:
                    raise  # nothing to serve: let Serve see the failure
                return  # keep serving the loaded model; /v1/model shows load_error
            # Swap in one assignment: in-flight batches keep the captioner they started with.
            self.captioner, self.load_error = captioner, None
            logger.info("loaded model %s version %s", captioner.name, captioner.version)
        self.cfg = cfg
        self.caption_batch.set_max_batch_size(cfg.max_batch_size)
        self.caption_batch.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)

    def check_health(self) -> None:
        if self.captioner is None:
            raise RuntimeError(f"no model is loaded ({self.load_error or 'waiting for user_config'})")

    def describe(self) -> dict[str, Any]:
        if self.captioner is None:
            return {"loaded": False, "error": self.load_error}
        info = self.captioner.describe()
        info["loaded"] = True
        info["load_error"] = self.load_error  # a failed reconfigure, while the old model serves on
        info["replica_id"] = serve.get_replica_context().replica_id.unique_id
        info["batching"] = {
            "max_batch_size": self.cfg.max_batch_size,
            "batch_wait_timeout_s": self.cfg.batch_wait_timeout_s,
        }
        return info

    async def caption(self, waveform: np.ndarray, options: CaptionOptions) -> dict[str, Any]:
        return await self.caption_batch(CaptionJob(waveform, options))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def caption_batch(self, jobs: list[CaptionJob]) -> list[dict[str, Any]]:
        captioner = self.captioner
        if captioner is None:
            return [{"error": "no model is loaded", "status": 503}] * len(jobs)
        model = {"name": captioner.name, "version": captioner.version}
        results: list[dict[str, Any]] = [{} for _ in jobs]
        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):  # one generate call per distinct (rag, decoding) in the batch
            groups.setdefault(job.options.key(), []).append(i)
        for rows in groups.values():
            options = jobs[rows[0]].options
            waves = [jobs[i].waveform for i in rows]
            # A worker thread keeps the event loop free for health checks and new arrivals.
            answers = await asyncio.to_thread(caption_group, captioner, waves, options)
            for i, answer in zip(rows, answers, strict=True):
                results[i] = (
                    answer if "error" in answer else {**answer, "model": model, "batch_size": len(jobs)}
                )
        return results


def caption_group(captioner, waves: list[np.ndarray], options: CaptionOptions) -> list[dict[str, Any]]:
    """One generate call for clips that share their options -> a result per clip.

    If the call fails, each clip is captioned alone, so a clip the model cannot take fails only its
    own request: ``{"error", "kind": "caption_failed", "status": 500}`` (the exception goes to the
    log, not to the client), while the others get their captions.
    """
    try:
        captions = caption_each(captioner, waves, options.rag, options.decoding)
    except RetrievalUnavailable as err:
        return [{"error": str(err), "kind": "retrieval_unavailable", "status": 409}] * len(waves)
    failed = {"error": "the model failed on this clip", "kind": "caption_failed", "status": 500}
    return [failed if text is None else {"caption": text, "rag": options.rag} for text in captions]


def create_http_app() -> FastAPI:
    return FastAPI(
        title="DistillCaps captioning service",
        description="Audio captioning with an LLM student distilled from retrieval-augmented teachers.",
        version="1",
    )


http_app = create_http_app()


# Defined before the ingress class: @serve.ingress captures the globals its methods use as they
# are when it runs.
def busy(message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": message, "kind": kind}, status_code=503, headers={"Retry-After": RETRY_AFTER_S}
    )


@http_app.exception_handler(UploadError)
async def _upload_error(_request: Request, err: UploadError) -> JSONResponse:
    return JSONResponse(err.to_json(), status_code=err.status)


@http_app.exception_handler(Exception)
async def _internal_error(request: Request, err: Exception) -> JSONResponse:
    """Anything unexpected: a JSON body a client can parse (the upload page calls response.json()),
    naming no local paths or addresses; the exception goes to the log."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=err)
    return JSONResponse({"error": "internal error; the service log has the details", "kind": "internal"}, 500)


# Serve admits more than ServingConfig.max_pending_requests, so that the ingress itself answers the
# overflow with a JSON 503 (Serve's own overflow answer is plain text).
@serve.deployment(name="CaptionIngress", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=1024)
@serve.ingress(http_app)
class CaptionIngress:
    """HTTP front: validates and decodes uploads, then awaits the batched model deployment."""

    def __init__(self, model: DeploymentHandle, config: dict[str, Any] | None = None) -> None:
        self.model = model
        self.cfg = ServingConfig.from_dict(config or {})
        self.limits = AudioLimits(max_bytes=self.cfg.max_upload_bytes, max_duration_s=self.cfg.max_duration_s)
        self.page = resources.files("distillcaps.serving").joinpath("static/index.html").read_text()
        self.pending = 0  # requests in `captions` now (one event loop: no lock needed)

    @http_app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(self) -> HTMLResponse:
        return HTMLResponse(self.page)

    @http_app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        try:
            info = await self.model.describe.remote()
        except Exception as err:  # the model replica is gone or not yet started
            logger.warning("health check: the model deployment did not answer: %s", err)
            return JSONResponse(
                {"status": "unavailable", "error": "the model deployment did not answer"}, 503
            )
        if not info.get("loaded"):
            # the load error names the model URI and local paths: /v1/model shows it to operators
            return JSONResponse({"status": "unavailable", "error": "no model is loaded"}, status_code=503)
        return JSONResponse({"status": "ok", "model": {"name": info["name"], "version": info["version"]}})

    @http_app.get("/v1/model")
    async def model_info(self) -> JSONResponse:
        info = await self.model.describe.remote()
        return JSONResponse(info, status_code=200 if info.get("loaded") else 503)

    @http_app.post("/v1/captions")
    async def captions(self, request: Request) -> JSONResponse:
        """Admission (a bounded number of requests at once) and the deadline around `_caption`."""
        if self.pending >= self.cfg.max_pending_requests:
            return busy(f"the service is busy ({self.pending} requests pending); retry shortly", "overloaded")
        self.pending += 1
        try:
            return await asyncio.wait_for(self._caption(request), timeout=self.cfg.request_timeout_s)
        except TimeoutError:
            return busy(f"no caption within {self.cfg.request_timeout_s:g} s; retry shortly", "timeout")
        finally:
            self.pending -= 1

    async def _caption(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        audio, fields = await self._read_upload(request)
        options = parse_options(
            fields, max_num_beams=self.cfg.max_num_beams, max_new_tokens=self.cfg.max_new_tokens
        )
        decoded = await asyncio.to_thread(decode_audio, audio, self.limits)
        result = await self.model.caption.remote(decoded.waveform, options)
        if "error" in result:
            return JSONResponse(
                {"error": result["error"], "kind": result.get("kind", "unavailable")},
                status_code=result["status"],
            )
        return JSONResponse(
            {
                "caption": result["caption"],
                "rag": result["rag"],
                "model": result["model"],
                "batch_size": result["batch_size"],  # requests that shared this generate call
                "latency_ms": round((time.perf_counter() - started) * 1000.0, 1),
            }
        )

    async def _read_upload(self, request: Request) -> tuple[bytes, dict[str, str]]:
        """-> (audio bytes, option fields from the query string and the form)."""
        fields = dict(request.query_params)
        content_type = request.headers.get("content-type", "")
        is_multipart = content_type.lower().startswith("multipart/form-data")
        if not is_multipart:
            check_content_type(content_type)
        overhead = MULTIPART_OVERHEAD_BYTES if is_multipart else 0
        body = await self._read_body_capped(request, self.cfg.max_upload_bytes + overhead)
        if not body:
            raise UploadError(400, "empty_body", "the request body is empty: send an audio file")
        if not is_multipart:
            return body, fields
        request._body = body  # Starlette parses the form from the cached body
        try:
            form = await request.form(max_files=1, max_fields=len(fields) + 8)
        except Exception as err:  # malformed multipart, too many parts
            raise UploadError(400, "bad_multipart", f"malformed multipart upload: {err}") from err
        upload = form.get("audio") or form.get("file")
        if upload is None or isinstance(upload, str):
            raise UploadError(400, "no_file", "the multipart upload has no file field named 'audio'")
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields[key] = value
        return await upload.read(), fields

    async def _read_body_capped(self, request: Request, cap: int) -> bytes:
        limit = f"the size limit of {self.cfg.max_upload_bytes} bytes"
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise UploadError(413, "too_large", f"the upload is {declared} bytes, over {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise UploadError(413, "too_large", f"the upload is over {limit}")
            chunks.append(chunk)
        return b"".join(chunks)


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """Application builder (``serve run`` import paths and ``distillcaps serve``): args = ServingConfig."""
    cfg = ServingConfig.from_dict(args or {})
    model = CaptionModel.options(user_config=cfg.to_dict()).bind()
    # The ingress gets only its own fields, so a model change leaves its replica untouched.
    return CaptionIngress.bind(model, {k: getattr(cfg, k) for k in INGRESS_KEYS})


def serve_config(
    options: dict[str, Any] | None = None, *, name: str = "distillcaps", route_prefix: str = "/"
) -> dict[str, Any]:
    """A Serve config (the shape of serve/config.yaml) for ServingConfig ``options``.

    Deployed with ``deploy_config``, a later config that differs only in the model's user_config is
    applied in place by ``reconfigure`` (``serve.run`` from Python always starts new replicas).
    """
    cfg = ServingConfig.from_dict(options or {})
    return {
        "applications": [
            {
                "name": name,
                "route_prefix": route_prefix,
                "import_path": "distillcaps.serving.app:build_app",
                "args": {k: getattr(cfg, k) for k in INGRESS_KEYS},
                "deployments": [{"name": "CaptionModel", "user_config": cfg.to_dict()}],
            }
        ]
    }


def deploy_config(config: dict[str, Any]) -> None:
    """Apply a Serve config to the running Serve instance, as ``serve run config.yaml`` does."""
    from ray.serve.schema import ServeDeploySchema

    from distillcaps.ray_compat import serve_client  # lazy: Ray's private Serve client, once deployed

    serve_client().deploy_apps(ServeDeploySchema.model_validate(config))
