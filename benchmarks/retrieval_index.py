"""Retrieval: queries/s of exact faiss vs torch matmul+topk vs approximate indexes, and their recall@k.

    python benchmarks/retrieval_index.py            # datastores of 10k, 100k and 1M vectors
    python benchmarks/retrieval_index.py --quick    # 10k and 100k only

The datastore is synthetic: 512-d unit vectors drawn around random cluster centres (real CLAP
caption embeddings are clustered; uniform random vectors would be the worst case for an
approximate index and say little about real use). Queries come from the same distribution but are
not in the datastore. Recall@k of each approximate index is measured against exact faiss; torch's
recall against faiss is reported too, as a check that both exact paths agree.

The indexes are the retrieval room's classes (``distillcaps.retrieval.index``: CAPTION_INDEXES with
the settings ``index_settings`` gives each size); settings.index_source says so.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    base_parser,
    measure_alternating,
    paired_ratio,
    parse_args,
    set_threads,
)
from distillcaps.retrieval.config import RetrievalConfig
from distillcaps.retrieval.index import CAPTION_INDEXES, index_settings

DIM = 512
# Queries per repetition (rounded up to whole batches): about a second of faiss flat search at batch 1.
QUERY_TARGET = {10_000: 256, 100_000: 64, 1_000_000: 16}
# HNSW builds at ~1k vectors/s on one loaded core here (95 s at 100k): it is skipped above this size.
HNSW_MAX_SIZE = {"quick": 10_000, "full": 100_000}


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__file__, __doc__)
    parser.add_argument("--sizes", type=int, nargs="+", help="datastore sizes (default 10k 100k 1M)")
    parser.add_argument("--queries", type=int, default=0, help="queries per repetition (0: per-size default)")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[1, 64, 512],
        help="queries per search call: 1 online, 64 the retrieval batch, 512 bulk",
    )
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--k", type=int, default=10, help="neighbours per query; recall@k is measured")
    parser.add_argument("--clusters", type=int, default=1000, help="cluster centres of the synthetic data")
    parser.add_argument("--approx", nargs="+", default=["ivf", "hnsw"], help="approximate indexes to time")
    parser.add_argument(
        "--hnsw-max-size",
        type=int,
        default=0,
        help="largest datastore to build HNSW for (0: 10k with --quick, else 100k)",
    )
    parser.add_argument(
        "--ivf-train-points-per-list",
        type=int,
        default=-1,
        help="k-means training sample per IVF list (-1: 32, 0: the index class's own training)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(arg_parser(), argv)
    args.hnsw_max_size = args.hnsw_max_size or HNSW_MAX_SIZE["quick" if args.quick else "full"]
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    set_threads(args.threads)

    args.ivf_train_points_per_list = (
        IVF_TRAIN_POINTS_PER_LIST if args.ivf_train_points_per_list < 0 else args.ivf_train_points_per_list
    )
    backends = room_backends(args.ivf_train_points_per_list)
    result = BenchmarkResult(
        name="retrieval_index",
        args=args,
        settings={
            "sizes": sizes,
            "dim": args.dim,
            "k": args.k,
            "query_batch_sizes": args.batch_sizes,
            "queries_per_repetition": {
                f"{n}/b{b}": queries_for(n, b, args) for n in sizes for b in args.batch_sizes
            },
            "data": f"unit vectors around {args.clusters} random centres (noise 0.6/sqrt(dim) per axis)",
            "approx": args.approx,
            "hnsw_max_size": args.hnsw_max_size,
            "index_source": backends.source,
            "index_params": backends.params,
            "seed": args.seed,
        },
        versions=("faiss-cpu", "faiss-gpu", "torch", "numpy"),
    )
    default_per_size = {}
    for n in sizes:
        default_per_size[str(n)] = bench_size(result, backends, n, args)
        gc.collect()
    result.settings["default_supported_per_size"] = default_per_size
    result.write()
    return 0


def queries_for(n: int, batch: int, args: Any) -> int:
    """Queries per repetition: a whole number of batches, about a second of exact search each."""
    target = args.queries or QUERY_TARGET.get(n, max(16, 2_560_000 // max(n, 1)))
    calls = max(1, -(-target // batch))
    return calls * batch


# ---------------------------------------------------------------------------------------------
# Data


def synthetic_unit_vectors(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) float32 unit vectors: a random centre plus Gaussian noise, normalised (in chunks)."""
    out = np.empty((n, dim), dtype=np.float32)
    noise = 0.6 / np.sqrt(dim)  # per-axis noise: neighbours share a centre but are not near-duplicates
    for start in range(0, n, 100_000):
        stop = min(start + 100_000, n)
        picks = rng.integers(0, len(centres), size=stop - start)
        block = centres[picks] + rng.standard_normal((stop - start, dim), dtype=np.float32) * noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out


# ---------------------------------------------------------------------------------------------
# Indexes: the retrieval room's classes


@dataclass
class Backends:
    """name -> build(vectors (N,D) float32) -> search(queries (Q,D), k) -> ids (Q,k) int64."""

    source: str
    builders: dict[str, Callable]
    params: dict[str, Any]


def room_backends(ivf_train_points_per_list: int) -> Backends:
    """The retrieval room's CAPTION_INDEXES with the settings its config would give each size."""
    rcfg = RetrievalConfig(index_gpu=False)

    def builder(name: str) -> Callable:
        cls = CAPTION_INDEXES.get(name)
        if name == "ivf" and ivf_train_points_per_list:
            cls = subsampled_ivf(cls, ivf_train_points_per_list)

        def build(vectors: np.ndarray):
            index = cls(index_settings(rcfg, len(vectors)))
            index.add(vectors)
            return lambda q, k: index.search(q, k)[1]

        return build

    names = {"faiss_flat": "exact", "torch_topk": "torch", "ivf": "ivf", "hnsw": "hnsw"}
    return Backends(
        source="distillcaps.retrieval.index (CAPTION_INDEXES, index_settings(RetrievalConfig()))",
        builders={
            ours: builder(theirs) for ours, theirs in names.items() if theirs in CAPTION_INDEXES.names()
        },
        params={
            "ivf_nlist": rcfg.ivf_nlist or "4*sqrt(N)",
            "ivf_nprobe": rcfg.ivf_nprobe,
            "ivf_train_points_per_list": ivf_train_points_per_list or "faiss default (<= 256, 25 iterations)",
            "hnsw_m": rcfg.hnsw_m,
            "hnsw_ef_search": "the room's default (128)",
        },
    )


def subsampled_ivf(ivf_cls: type, points_per_list: int) -> type:
    """The room's IVF index, k-means trained on <= points_per_list vectors per list (10 iterations).

    faiss's defaults (256 per list, 25 iterations) cost O(N^1.5) with nlist = 4*sqrt(N): minutes at
    100k on one core, hours at 1M. Recall is measured either way, so the cheaper training is honest.
    """

    class SubsampledIVF(ivf_cls):
        def make(self, dim: int, vectors: np.ndarray):
            nlist = max(1, min(int(self.settings.get("nlist", 1)), len(vectors)))
            self.settings["nlist"] = nlist
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.max_points_per_centroid = points_per_list
            index.cp.niter = IVF_TRAIN_ITERATIONS
            index.train(vectors)
            return self.configure(index)

    return SubsampledIVF


IVF_TRAIN_POINTS_PER_LIST = 32
IVF_TRAIN_ITERATIONS = 10


# ---------------------------------------------------------------------------------------------
# One datastore size


def bench_size(result: BenchmarkResult, backends: Backends, n: int, args: Any) -> dict[str, str]:
    """Every index over one datastore of ``n`` vectors, at every query batch size; -> the default
    these numbers support per batch size."""
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = synthetic_unit_vectors(n, args.dim, centres, rng)
    query_sets = {
        b: synthetic_unit_vectors(queries_for(n, b, args), args.dim, centres, rng) for b in args.batch_sizes
    }
    searches, build_s = build_indexes(result, backends, vectors, args)

    # Recall on the largest query set, against exact faiss.
    recall_queries = query_sets[max(args.batch_sizes)]
    exact_ids = searches["faiss_flat"](recall_queries, args.k)
    recall = {
        name: recall_at_k(search(recall_queries, args.k), exact_ids) for name, search in searches.items()
    }
    built = Built(searches, build_s, recall)
    defaults = {
        f"batch_{batch}": measure_batch(result, built, n, batch, queries, args)
        for batch, queries in query_sets.items()
    }
    del built, searches, vectors
    return defaults


def build_indexes(
    result: BenchmarkResult, backends: Backends, vectors: np.ndarray, args: Any
) -> tuple[dict[str, Callable], dict[str, float]]:
    """The exact indexes and ``--approx``'s over ``vectors``; -> (name -> search, name -> build seconds)."""
    n = len(vectors)
    searches: dict[str, Callable] = {}
    build_s: dict[str, float] = {}
    for name in ["faiss_flat", "torch_topk", *args.approx]:
        if name not in backends.builders:
            result.skip(f"{name} at N={n}", f"no such index in {backends.source}")
            continue
        if name == "hnsw" and n > args.hnsw_max_size:
            result.skip(
                f"hnsw at N={n}",
                f"build would take ~{n / 1000:.0f} s or more on one core "
                f"(~1k vectors/s measured at 100k); raise --hnsw-max-size to include it",
            )
            continue
        start = time.perf_counter()
        searches[name] = backends.builders[name](vectors)
        build_s[name] = time.perf_counter() - start
        print(f"N={n}: built {name} in {build_s[name]:.1f} s", flush=True)
    return searches, build_s


@dataclass
class Built:
    """The indexes over one datastore: their searches, build seconds and recall@k against faiss flat."""

    searches: dict[str, Callable]
    build_s: dict[str, float]
    recall: dict[str, float]


def measure_batch(
    result: BenchmarkResult, built: Built, n: int, batch: int, queries: np.ndarray, args: Any
) -> str:
    """Every index side by side at ``batch`` queries per call, each against faiss flat; -> the default."""
    params = {"datastore_size": n, "query_batch": batch, "queries": len(queries), "k": args.k}
    cases = {
        name: Case(
            f"{name}@{n}/b{batch}",
            "queries",
            len(queries),
            {"index": name, **params},
            extra={"build_s": round(built.build_s[name], 3), f"recall_at_{args.k}": built.recall[name]},
        )
        for name in built.searches
    }
    searches = built.searches
    measure_alternating(
        [(cases[name], batched_search(search, queries, batch, args.k)) for name, search in searches.items()],
        repeats=args.repeats,
        warmup=args.warmup,
    )
    for case in cases.values():
        result.add(case)
    flat = cases["faiss_flat"]
    for name, case in cases.items():
        if name != "faiss_flat":
            result.ratios.append(paired_ratio(f"{name} / faiss_flat @{n} batch {batch} (q/s)", case, flat))
    best, finding = choose_default(cases, args.k)
    result.findings.append(finding)
    return best


def batched_search(search: Callable, queries: np.ndarray, batch: int, k: int) -> Callable[[], None]:
    """One repetition: all queries, ``batch`` per call (1 = online serving, 64 = the retrieval batch)."""

    def run() -> None:
        for start in range(0, len(queries), batch):
            search(queries[start : start + batch], k)

    return run


def recall_at_k(ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / k (order ignored)."""
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ids, exact_ids)]
    return round(float(np.mean(hits)) / exact_ids.shape[1], 4)


def choose_default(cases: dict[str, Case], k: int, min_recall: float = 0.95) -> tuple[str, str]:
    """Fastest index whose recall@k is at least ``min_recall``: the default these numbers support."""
    key = f"recall_at_{k}"
    fine = {name: c for name, c in cases.items() if c.extra[key] >= min_recall}
    best = max(fine, key=lambda name: fine[name].median_rate)
    params = next(iter(cases.values())).params
    n, batch = params["datastore_size"], params["query_batch"]
    summary = ", ".join(
        f"{name} {c.median_rate:.0f} q/s (recall {c.extra[key]:.3f})" for name, c in cases.items()
    )
    return (
        best,
        f"N={n}, {batch} queries per call: fastest with recall@{k} >= {min_recall} is {best} ({summary})",
    )


if __name__ == "__main__":
    raise SystemExit(main())
