"""What an experiment runs: the trainings it needs and the rows (evaluations) of its table.

A plan is pure data, built by a registered function, so the row layout is testable without training
anything. Rows that name the same training reuse its checkpoint (Table 5: four trainings, seven
evaluations per seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from distillcaps.registry import Registry


@dataclass(frozen=True)
class TrainingSpec:
    key: str  # unique within the plan; names the child run and the output folder
    overrides: tuple[str, ...]  # dotted config overrides on top of the invocation's config


@dataclass(frozen=True)
class RowSpec:
    name: str  # unique within the plan, e.g. "distill/rag-test"
    training: str  # TrainingSpec.key whose checkpoint this row evaluates
    rag: bool  # retrieval at test time
    columns: dict[str, str] = field(default_factory=dict)  # the table's leading columns, e.g. Distillation: ✓
    eval_overrides: tuple[str, ...] = ()  # config overrides for evaluation only (e.g. another domain)
    paper_key: object = None  # key into the paper's table when the layout matches


@dataclass(frozen=True)
class ExperimentPlan:
    script: str
    title: str
    trainings: tuple[TrainingSpec, ...]
    rows: tuple[RowSpec, ...]

    def __post_init__(self) -> None:
        keys = [t.key for t in self.trainings]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.script}: duplicate training keys {keys}")
        names = [r.name for r in self.rows]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.script}: duplicate row names {names}")
        for row in self.rows:
            if row.training not in keys:
                raise ValueError(f"{self.script}: row {row.name!r} needs unknown training {row.training!r}")

    def rows_of(self, training_key: str) -> list[RowSpec]:
        return [r for r in self.rows if r.training == training_key]


PLANS: Registry[Callable[..., ExperimentPlan]] = Registry("experiment plan")

YES, NO = "✓", "✗"


def _mark(flag: bool) -> str:
    return YES if flag else NO


@PLANS.register("ablate_dda")
def ablate_dda_plan() -> ExperimentPlan:
    """Table 5 (distillation × RAG in training × RAG at test) plus the rag+auto control."""
    modes = {  # training mode -> (distillation, RAG in training)
        "baseline": (False, False),
        "rag": (False, True),
        "distill": (True, True),
        "rag+auto": (False, True),
    }
    trainings = tuple(TrainingSpec(mode, (f"train.mode={mode}",)) for mode in modes)
    tests = {  # which test-time settings each training is scored with, in the paper's row order
        "baseline": (False,),
        "rag": (False, True),
        "distill": (False, True),
        "rag+auto": (False, True),
    }
    rows = []
    for mode, (distill, rag_train) in modes.items():
        for rag_test in tests[mode]:
            rows.append(
                RowSpec(
                    name=f"{mode}/{'rag' if rag_test else 'no-rag'}",
                    training=mode,
                    rag=rag_test,
                    columns={
                        "Training mode": mode,
                        "Distillation": _mark(distill),
                        "RAG train": _mark(rag_train),
                        "RAG test": _mark(rag_test),
                    },
                    # the control (both CE terms, no KL) has no row in the paper
                    paper_key=None if mode == "rag+auto" else (distill, rag_train, rag_test),
                )
            )
    return ExperimentPlan("ablate_dda", "Table 5: distillation and RAG ablation", trainings, tuple(rows))


FFT_VARIANTS = ("none", "paper", "released", "spectral")


@PLANS.register("ablate_fft")
def ablate_fft_plan(variants: tuple[str, ...] = FFT_VARIANTS) -> ExperimentPlan:
    """Tables 6/7: FFT adapter variants under the full DistillCaps objective, scored both ways."""
    trainings = tuple(
        TrainingSpec(variant, ("train.mode=distill", f"model.adapter.variant={variant}"))
        for variant in variants
    )
    rows = []
    for variant in variants:
        for rag_test in (False, True):
            rows.append(
                RowSpec(
                    name=f"{variant}/{'rag' if rag_test else 'no-rag'}",
                    training=variant,
                    rag=rag_test,
                    columns={"FFT adapter": variant, "RAG test": _mark(rag_test)},
                    # Table 7's surviving "w/ FFT" row is the paper's adapter scored with retrieval
                    paper_key="w/ FFT" if (variant == "paper" and rag_test) else None,
                )
            )
    return ExperimentPlan("ablate_fft", "Tables 6/7: FFT adapter ablation", trainings, tuple(rows))


CROSS_DOMAIN_MODES = ("baseline", "rag", "distill")


@PLANS.register("cross_domain")
def cross_domain_plan(
    domains: tuple[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = (
        ("outdoor", ("data.synth.domain=outdoor",)),
        ("indoor", ("data.synth.domain=indoor",)),
    ),
    modes: tuple[str, ...] = CROSS_DOMAIN_MODES,
) -> ExperimentPlan:
    """Table 3's layout: train on A, test on B (and B on A), retrieval from the training domain.

    ``domains`` are (name, config overrides selecting that dataset). The evaluation keeps the
    training domain's retrieval datastore: ``retrieval.datastore_*`` settings come from the
    training config, only the evaluated data changes.
    """
    (a, a_over), (b, b_over) = domains
    trainings, rows = [], []
    for (src, src_over), (dst, dst_over) in (((a, a_over), (b, b_over)), ((b, b_over), (a, a_over))):
        for mode in modes:
            key = f"{src}/{mode}"
            trainings.append(TrainingSpec(key, (*src_over, f"train.mode={mode}")))
            tests = (False,) if mode == "baseline" else (False, True)
            for rag_test in tests:
                rows.append(
                    RowSpec(
                        name=f"{src}->{dst}/{mode}/{'rag' if rag_test else 'no-rag'}",
                        training=key,
                        rag=rag_test,
                        columns={
                            "Train → test": f"{src} → {dst}",
                            "Training mode": mode,
                            "RAG test": _mark(rag_test),
                        },
                        eval_overrides=dst_over,
                        paper_key=(mode, rag_test),
                    )
                )
    return ExperimentPlan("cross_domain", "Table 3: out-of-domain evaluation", tuple(trainings), tuple(rows))
