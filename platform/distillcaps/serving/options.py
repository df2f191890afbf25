"""Per-request decoding options, parsed from query or form fields and held within safe limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from distillcaps.serving.upload import UploadError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class DecodingOptions:
    num_beams: int | None = None  # None -> the model's own generation config
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class CaptionOptions:
    rag: bool = False  # prepend retrieved captions (the teacher prompt); needs a deployed datastore
    decoding: DecodingOptions = DecodingOptions()

    def key(self) -> tuple:
        """Requests with equal keys can share one generate call."""
        return (self.rag, self.decoding)


KNOWN_OPTIONS = ("rag", "num_beams", "max_new_tokens")


def parse_options(fields: Mapping[str, str], *, max_num_beams: int, max_new_tokens: int) -> CaptionOptions:
    """Strings from a query string or form -> CaptionOptions; a bad value raises a 422 UploadError."""
    unknown = sorted(set(fields) - set(KNOWN_OPTIONS))
    if unknown:
        raise UploadError(
            422, "bad_option", f"unknown option {unknown[0]!r}; known options: {', '.join(KNOWN_OPTIONS)}"
        )
    return CaptionOptions(
        rag=_parse_bool("rag", fields.get("rag")),
        decoding=DecodingOptions(
            num_beams=_parse_bounded_int("num_beams", fields.get("num_beams"), 1, max_num_beams),
            max_new_tokens=_parse_bounded_int(
                "max_new_tokens", fields.get("max_new_tokens"), 1, max_new_tokens
            ),
        ),
    )


def _parse_bool(name: str, text: str | None) -> bool:
    if text is None:
        return False
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UploadError(422, "bad_option", f"option {name}={text!r} is not a boolean (use true or false)")


def _parse_bounded_int(name: str, text: str | None, low: int, high: int) -> int | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise UploadError(422, "bad_option", f"option {name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise UploadError(422, "bad_option", f"option {name}={value} is out of range [{low}, {high}]")
    return value
