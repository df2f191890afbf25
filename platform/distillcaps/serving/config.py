"""Serving options: which model to load, how requests are batched, and the limits on uploads.

Not part of the top-level Config: the service reads these from its own YAML / CLI flags and from
Ray Serve's ``user_config`` (which ``reconfigure`` applies without a restart).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL_URI = "models:/distillcaps-student@champion"  # what the sweep registers


@dataclass
class ServingConfig:
    model_uri: str = DEFAULT_MODEL_URI  # models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/PATH or a dir
    tracking_uri: str = ""  # empty -> $MLFLOW_TRACKING_URI, else sqlite:///<abs runs>/mlflow.db
    backend: str = "distillcaps"  # CAPTIONER_BACKENDS key that turns a checkpoint dir into a Captioner
    plugin_modules: list[str] = field(default_factory=list)  # imported first; may register more backends
    retrieval: bool = False  # deploy the datastore so rag=true works (else rag=true is a 4xx)
    max_batch_size: int = 8  # concurrent requests that share one generate call
    batch_wait_timeout_s: float = 0.02  # how long the first request waits for others to join its batch
    max_upload_bytes: int = 20 * 1024 * 1024  # 20 MB: a 30 s 48 kHz stereo 16-bit wav is ~5.8 MB
    max_duration_s: float = 30.0  # Clotho's longest clips; longer audio is rejected (422), not cropped
    max_num_beams: int = 8  # beam search cost grows linearly; 8 keeps one request bounded
    max_new_tokens: int = 64  # captions are ~10-20 words; 64 tokens is generous and bounded
    # Requests an ingress replica holds at once (decoding or waiting for a caption); one more is
    # answered at once with a JSON 503 and Retry-After instead of queueing without bound. 64 is
    # 8 full batches of 8: several seconds of work for the tiny model on 2 cores.
    max_pending_requests: int = 64
    request_timeout_s: float = 60.0  # a request without its caption by then is answered 503

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> ServingConfig:
        """Build from a mapping (e.g. Serve's user_config); unknown keys name themselves."""
        raw = dict(raw or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            valid = ", ".join(sorted(names))
            raise ValueError(f"unknown serving option {unknown[0]!r}; valid options: {valid}")
        cfg = cls(**raw)
        cfg.validate()
        return cfg

    def replace(self, **changes: Any) -> ServingConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        positive = {
            "max_batch_size": self.max_batch_size,
            "max_upload_bytes": self.max_upload_bytes,
            "max_duration_s": self.max_duration_s,
            "max_num_beams": self.max_num_beams,
            "max_new_tokens": self.max_new_tokens,
            "max_pending_requests": self.max_pending_requests,
            "request_timeout_s": self.request_timeout_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"serving option {name} must be > 0, got {value!r}")
        if self.batch_wait_timeout_s < 0:
            value = self.batch_wait_timeout_s
            raise ValueError(f"serving option batch_wait_timeout_s must be >= 0, got {value!r}")
        if not self.model_uri:
            raise ValueError("serving option model_uri is empty")
