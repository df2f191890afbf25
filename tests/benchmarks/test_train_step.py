"""benchmarks/train_step.py runs on a random tiny stack and writes a well-formed JSON."""

from __future__ import annotations


def test_train_step_quick_small(bench):
    data = bench(
        "train_step.py",
        "--quick",
        "--batch",
        "2",
        "--epoch-rows",
        "4",
        "--seconds",
        "1",
        "--repeats",
        "2",
        "--warmup",
        "0",
    )
    names = {c["name"] for c in data["cases"]}
    assert names == {
        "baseline/b2",
        "rag/b2",
        "distill_two_passes/b2",
        "distill_one_batch/b2",
        "epoch_no_cache",
        "epoch_cache",
    }
    assert len(data["ratios"]) == 4
    # The padded single batch is an alternative execution of the same objective: same loss.
    assert abs(data["settings"]["one_padded_batch_loss_minus_two_pass_loss_eval_mode"]) < 1e-4
