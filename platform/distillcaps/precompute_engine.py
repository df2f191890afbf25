"""Where a one-off pass over a data set's clips runs: a Ray Data stage or this process.

Two passes embed every clip once and cache what they computed: the CLAP audio embeddings behind the
precomputed retrieval (``retrieval.embed_with``) and the frozen encoder's features
(``train.encode_features_with``). Each setting is "ray", "local" or "auto" (the default).

Why "auto" runs CPU passes here: a Ray Data pass first starts an actor that imports torch and loads
the model (4-5 s per pass), and then took longer per clip than this process did as well (features
19 against 16 ms, CLAP 8 against 7 ms), so on 2 cores the in-process pass was faster at both sizes
measured: 7-13x at --quick's 48 clips, 1.7-2.2x at the default's 600 (``benchmarks/
precompute_engines.py``). Both run one model with one torch thread. What Ray Data adds is placement:
a pass meant for a GPU (features with ``train.use_gpu``) goes to a GPU node that the calling process,
a cluster's head node say, may not have.
"""

from __future__ import annotations

ENGINES = ("auto", "local", "ray")


def runs_on_ray(engine: str, *, on_gpu: bool = False) -> bool:
    """Whether a pass with ``engine`` is a Ray Data stage: always for "ray", never for "local", and for
    "auto" when the pass should run on a GPU (``on_gpu``)."""
    if engine not in ENGINES:
        raise KeyError(f"unknown precompute engine {engine!r}; known: {', '.join(ENGINES)}")
    return engine == "ray" or (engine == "auto" and on_gpu)
