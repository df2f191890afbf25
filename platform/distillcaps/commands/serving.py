"""``distillcaps serve``, ``distillcaps caption-batch`` and ``distillcaps register-model``."""

from __future__ import annotations

import argparse
import json

from distillcaps.ray_runtime import ensure_ray
from distillcaps.serving.config import DEFAULT_MODEL_URI, ServingConfig
from distillcaps.serving.model_store import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL_NAME,
    default_tracking_uri,
    register_checkpoint,
)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    serve_parser = subparsers.add_parser(
        "serve", help="serve a model over HTTP (Ray Serve): POST /v1/captions, GET /, /healthz, /v1/model"
    )
    serve_parser.add_argument(
        "--model", default=DEFAULT_MODEL_URI, help="models:/NAME@ALIAS, models:/NAME/V or a dir"
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--num-cpus", type=float, default=None, help="CPUs for the local Ray instance")
    _add_serving_options(serve_parser)
    serve_parser.set_defaults(func=run_serve)

    batch_parser = subparsers.add_parser(
        "caption-batch", help="caption a folder or JSONL manifest through Ray Data into a DCASE CSV"
    )
    batch_parser.add_argument("model", help="models:/NAME@ALIAS, models:/NAME/VERSION or a checkpoint dir")
    batch_parser.add_argument("input", help="a folder of audio files or a JSONL manifest of {'path': ...}")
    batch_parser.add_argument("--out", required=True, help="predictions CSV (file_name,caption_predicted)")
    batch_parser.add_argument("--errors", default=None, help="errors CSV name, inside --out's folder")
    batch_parser.add_argument("--concurrency", type=int, default=1, help="model actors in the pool")
    batch_parser.add_argument("--batch-size", type=int, default=8)
    batch_parser.add_argument("--num-beams", type=int, default=None)
    batch_parser.add_argument("--max-new-tokens", type=int, default=None)
    _add_serving_options(batch_parser)
    batch_parser.set_defaults(func=run_caption_batch)

    register_parser = subparsers.add_parser(
        "register-model", help="log a checkpoint dir to MLflow, register it and set an alias"
    )
    register_parser.add_argument("checkpoint", help="a DistillCaps checkpoint directory")
    register_parser.add_argument("--name", default=DEFAULT_MODEL_NAME)
    register_parser.add_argument("--alias", default=DEFAULT_ALIAS, help="'' for none")
    register_parser.add_argument("--tracking-uri", default="")
    register_parser.set_defaults(func=run_register)


def _add_serving_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rag", action="store_true", help="deploy the datastore (retrieval) with the model")
    parser.add_argument("--tracking-uri", default="", help="MLflow store for models:/ URIs")
    parser.add_argument("--backend", default="distillcaps", help="captioner backend registry key")
    parser.add_argument("--max-batch-size", type=int, default=ServingConfig.max_batch_size)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=ServingConfig.batch_wait_timeout_s)
    parser.add_argument("--max-upload-bytes", type=int, default=ServingConfig.max_upload_bytes)
    parser.add_argument("--max-duration-s", type=float, default=ServingConfig.max_duration_s)


def _serving_config(args: argparse.Namespace, model_uri: str) -> ServingConfig:
    return ServingConfig(
        model_uri=model_uri,
        # Resolved here, so replicas (whatever their cwd) read the same store as this shell.
        tracking_uri=default_tracking_uri(args.tracking_uri)
        if model_uri.startswith(("models:/", "runs:/"))
        else "",
        backend=args.backend,
        retrieval=args.rag,
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_timeout_s,
        max_upload_bytes=args.max_upload_bytes,
        max_duration_s=args.max_duration_s,
    ).replace()


def run_serve(args: argparse.Namespace) -> int:
    import ray
    from ray import serve

    from distillcaps.serving.app import build_app  # lazy: Ray Serve, FastAPI and the model stack

    cfg = _serving_config(args, args.model)
    ensure_ray(num_cpus=args.num_cpus, object_store_mb=None)
    serve.start(http_options={"host": args.host, "port": args.port})
    print(f"serving {cfg.model_uri} on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    try:
        serve.run(build_app(cfg.to_dict()), name="distillcaps", route_prefix="/", blocking=True)
    except KeyboardInterrupt:  # Ctrl-C is how this command is meant to end: no traceback
        print("stopping: shutting Serve down", flush=True)
        serve.shutdown()
        ray.shutdown()
    return 0


def run_caption_batch(args: argparse.Namespace) -> int:
    import ray

    from distillcaps.serving.batch import caption_batch  # lazy: the model stack (torch)
    from distillcaps.serving.options import DecodingOptions  # lazy: via serving.upload, torch

    cfg = _serving_config(args, args.model)
    if not ray.is_initialized():
        ensure_ray(object_store_mb=None)
    result = caption_batch(
        cfg,
        args.input,
        args.out,
        rag=args.rag,
        errors=args.errors,
        decoding=DecodingOptions(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens),
        concurrency=args.concurrency,
        batch_size=args.batch_size,
    )
    print(
        json.dumps(
            {
                "predictions_csv": str(result.predictions_csv),
                "errors_csv": str(result.errors_csv),
                "inputs": result.num_inputs,
                "captioned": result.num_captioned,
                "failed": result.num_failed,
            }
        )
    )
    return 0


def run_register(args: argparse.Namespace) -> int:
    version = register_checkpoint(
        args.checkpoint, name=args.name, alias=args.alias or None, tracking_uri=args.tracking_uri
    )
    alias = f" (alias {args.alias}: models:/{args.name}@{args.alias})" if args.alias else ""
    print(f"registered {args.checkpoint} as models:/{args.name}/{version}{alias}")
    return 0
