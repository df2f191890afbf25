"""Inner-product search over the datastore vectors, behind one interface; chosen by ``retrieval.index``.

    auto   the default: torch up to AUTO_EXACT_MAX captions, ivf above
    exact  faiss IndexFlatIP: exact
    torch  matmul + topk: exact too; 8-12x faster than faiss-cpu flat at 10k-100k x 512 with 64
           queries per call on 2 cores (benchmarks/bench_retrieval_index.py)
    ivf    faiss IVF-Flat: approximate, for millions of captions (nlist clusters, nprobe searched)
    hnsw   faiss HNSW-Flat: approximate, graph-based, no training

faiss indexes move to the GPU when faiss sees one (faiss-gpu) and ``retrieval.index_gpu``.
Saved as a folder: ``index.json`` (kind + settings) + ``index.faiss`` or ``vectors.npy``.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillcaps.registry import Registry
from distillcaps.retrieval.config import RetrievalConfig

CAPTION_INDEXES: Registry = Registry("caption index")
INDEX_JSON = "index.json"


class CaptionIndex(ABC):
    kind: str = ""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings = dict(settings or {})

    @abstractmethod
    def add(self, vectors: np.ndarray) -> None:
        """(M, E) float32 L2-normalised; ids are row positions."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, E) -> scores (Q, k) float32 descending, ids (Q, k) int64 (-1 where fewer than k exist)."""

    @property
    @abstractmethod
    def size(self) -> int: ...

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_payload(directory)
        (directory / INDEX_JSON).write_text(
            json.dumps({"kind": self.kind, "settings": self.settings, "size": self.size})
        )
        return directory

    @abstractmethod
    def save_payload(self, directory: Path) -> None: ...

    @abstractmethod
    def load_payload(self, directory: Path) -> None: ...


# "auto": exact search by matmul while it is cheap (100k x 512 floats = 200 MB), IVF beyond.
AUTO_EXACT_MAX = 100_000


def resolve_index_kind(kind: str, size: int) -> str:
    """The registry key to build for `retrieval.index` over `size` captions ("auto" picks one)."""
    if kind == "auto":
        return "torch" if size <= AUTO_EXACT_MAX else "ivf"
    CAPTION_INDEXES.get(kind)  # unknown names fail here, listing the known ones
    return kind


def build_index(rcfg: RetrievalConfig, vectors: np.ndarray) -> CaptionIndex:
    kind = resolve_index_kind(rcfg.index, len(vectors))
    index = CAPTION_INDEXES.get(kind)(index_settings(rcfg, len(vectors)))
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def index_settings(rcfg: RetrievalConfig, size: int) -> dict[str, Any]:
    nlist = rcfg.ivf_nlist or max(1, int(4 * math.sqrt(size)))
    return {
        "gpu": rcfg.index_gpu,
        "nlist": min(nlist, max(1, size)),
        "nprobe": rcfg.ivf_nprobe,
        "hnsw_m": rcfg.hnsw_m,
    }


def load_index(directory: Path) -> CaptionIndex:
    directory = Path(directory)
    meta_path = directory / INDEX_JSON
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: not a saved caption index (no {INDEX_JSON})")
    meta = json.loads(meta_path.read_text())
    index = CAPTION_INDEXES.get(meta["kind"])(meta["settings"])
    index.load_payload(directory)
    return index


# ---------------------------------------------------------------------------------------------


@CAPTION_INDEXES.register("torch")
class TorchIndex(CaptionIndex):
    kind = "torch"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        use_gpu = self.settings.get("gpu", True) and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.vectors = torch.zeros(0, 0)

    def add(self, vectors: np.ndarray) -> None:
        new = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(self.device)
        self.vectors = new if self.vectors.numel() == 0 else torch.cat([self.vectors, new])

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    @torch.inference_mode()
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
        found = min(k, self.size)
        scores, ids = (q @ self.vectors.T).topk(found, dim=1)  # (Q, M) -> (Q, found)
        return pad_results(scores.cpu().numpy(), ids.cpu().numpy(), k)

    def save_payload(self, directory: Path) -> None:
        np.save(directory / "vectors.npy", self.vectors.cpu().numpy())

    def load_payload(self, directory: Path) -> None:
        self.vectors = torch.zeros(0, 0)
        self.add(np.load(directory / "vectors.npy"))


def pad_results(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss convention: when fewer than k vectors exist, pad with score -inf and id -1."""
    missing = k - scores.shape[1]
    if missing > 0:
        scores = np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, missing)), constant_values=-1)
    return scores.astype(np.float32), ids.astype(np.int64)


class FaissIndex(CaptionIndex):
    supports_gpu = True

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.index = None

    @abstractmethod
    def make(self, dim: int, vectors: np.ndarray): ...

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.index is None:
            self.index = self.to_device(self.make(vectors.shape[1], vectors))
        self.index.add(vectors)

    @property
    def size(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        scores = np.where(ids < 0, -np.inf, scores)
        return scores.astype(np.float32), ids.astype(np.int64)

    def to_device(self, index):
        import faiss

        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if self.supports_gpu and self.settings.get("gpu", True) and gpus > 0:
            return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        return index

    def save_payload(self, directory: Path) -> None:
        import faiss

        index = self.index
        if hasattr(faiss, "index_gpu_to_cpu") and type(index).__name__.startswith("Gpu"):
            index = faiss.index_gpu_to_cpu(index)
        faiss.write_index(index, str(directory / "index.faiss"))

    def load_payload(self, directory: Path) -> None:
        import faiss

        self.index = self.configure(self.to_device(faiss.read_index(str(directory / "index.faiss"))))

    def configure(self, index):
        return index


@CAPTION_INDEXES.register("exact")
class ExactIndex(FaissIndex):
    kind = "exact"

    def make(self, dim: int, vectors: np.ndarray):
        import faiss

        return faiss.IndexFlatIP(dim)


@CAPTION_INDEXES.register("ivf")
class IVFIndex(FaissIndex):
    kind = "ivf"

    def make(self, dim: int, vectors: np.ndarray):
        import faiss

        nlist = max(1, min(int(self.settings.get("nlist", 1)), len(vectors)))
        self.settings["nlist"] = nlist
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)  # k-means on the datastore itself
        return self.configure(index)

    def configure(self, index):
        index.nprobe = int(self.settings.get("nprobe", 16))
        return index


@CAPTION_INDEXES.register("hnsw")
class HNSWIndex(FaissIndex):
    kind = "hnsw"
    supports_gpu = False  # faiss has no GPU HNSW

    def make(self, dim: int, vectors: np.ndarray):
        import faiss

        return self.configure(
            faiss.IndexHNSWFlat(dim, int(self.settings.get("hnsw_m", 32)), faiss.METRIC_INNER_PRODUCT)
        )

    def configure(self, index):
        index.hnsw.efSearch = max(int(self.settings.get("ef_search", 128)), 64)
        return index
