"""benchmarks/paper_scale.py: the paper-sized path shrunk (--scale tiny) runs on a CPU through the real
CED loader, save_pretrained Llama and DistillCapsModel, and writes a well-formed JSON; the paper
scale refuses a CPU instead of pretending to benchmark a 7B model on it."""

from __future__ import annotations


def test_tiny_scale_runs_on_cpu_and_writes_the_result(bench):
    data = bench(
        "paper_scale.py",
        "--scale",
        "tiny",
        "--device",
        "cpu",
        "--quick",
        "--seconds",
        "2",
        "--new-tokens",
        "4",
    )
    assert data["repeats"] == 2  # --quick: 2 timed steps / generate calls
    assert [c["name"] for c in data["cases"]] == [
        "train_distill/b2",
        "student/b2",
        "rag/b2",
        "student_merged/b2",
    ]
    train = data["cases"][0]
    assert train["unit"] == "rows" and train["params"]["mode"] == "distill"
    assert train["extra"]["tokens_per_s"] > 0 and train["extra"]["peak_memory_gb"] is None  # no GPU
    merged_extra = data["cases"][3]["extra"]
    assert merged_extra["same_captions_as_unmerged"].endswith("/2")
    assert merged_extra["same_captions_unmerged_rerun"] == "2/2"  # a CPU decodes deterministically
    ratio, merging = data["ratios"]
    assert (ratio["numerator"], ratio["denominator"]) == ("student/b2", "rag/b2")
    assert (merging["numerator"], merging["denominator"]) == ("student_merged/b2", "student/b2")
    assert len(ratio["per_repetition"]) == len(merging["per_repetition"]) == 2

    settings = data["settings"]
    assert settings["scale"] == "tiny" and settings["device_name"] == "cpu"
    assert (settings["train_mode"], settings["precision"], settings["gradient_checkpointing"]) == (
        "distill",
        "bf16",
        True,
    )
    assert settings["llm_dtype"] == "bfloat16" and settings["new_tokens"] == 4
    # the teacher prompt carries the retrieved captions: it is longer than the student's
    positions = settings["prompt_positions"]
    assert positions["teacher_prompt"] > positions["student_prompt"] > 0
    assert 0 < settings["parameters"]["trainable"] < settings["parameters"]["total"]


def test_paper_scale_refuses_a_cpu(tmp_path, capsys, bench_script):
    code = bench_script("paper_scale.py").main(
        ["--scale", "paper", "--device", "cpu", "--output-dir", str(tmp_path)]
    )
    assert code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "paper_scale.json").exists()
