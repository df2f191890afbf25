"""The context diagnostic: it scores in the training layout and flags a LM without the skill."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from assembly_fixtures import CAPTIONS, PROMPT_TEXT

from distillcaps.model.config import LLMConfig, PromptConfig
from distillcaps.model.context_diagnostic import CONTEXTS, diagnose_context, mean_ce_from
from distillcaps.model.llm import tiny_llama
from distillcaps.model.prompts import PromptTokens
from distillcaps.model.tokenizer import train_caption_tokenizer

CLIPS = [CAPTIONS[i : i + 2] for i in range(0, 8, 2)]  # 4 clips of 2 captions


@pytest.fixture(scope="module")
def fresh():
    tokenizer = train_caption_tokenizer(CAPTIONS + PROMPT_TEXT, 300)
    torch.manual_seed(0)
    llm_cfg = LLMConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    return tiny_llama(llm_cfg, tokenizer), PromptTokens(tokenizer, PromptConfig())


def test_a_freshly_initialised_lm_is_flagged(fresh):
    llm, tokens = fresh
    retrieved = [CLIPS[(i + 1) % 4] for i in range(4)]
    d = diagnose_context(llm, tokens, CLIPS, retrieved, top_k=2, name="fresh")
    assert set(d.context_ce) == {"own", "retrieved", "random", "none"}
    assert d.llm == "fresh" and d.num_captions == 8
    assert all(v > 3.0 for v in d.context_ce.values())  # about ln(vocabulary): it knows nothing
    assert "own <= none - 0.3" in d.unmet() and "own <= random - 0.3" in d.unmet()
    assert "induction <= 1" in d.unmet()
    assert "NOT MET" in d.table()
    assert json.loads(json.dumps(d.to_dict()))["context_ce"]["own"] == pytest.approx(d.context_ce["own"])


def test_without_retrieval_that_context_is_reported_as_not_measured(fresh):
    llm, tokens = fresh
    d = diagnose_context(llm, tokens, CLIPS, None, top_k=2)
    assert d.context_ce["retrieved"] is None and d.targets["retrieved < none"] is None
    assert "not measured" in d.table()


def test_scores_only_the_positions_from_start_on(fresh):
    llm, tokens = fresh
    row = tokens.prefix_ids([None])[0] + tokens.after_ids + tokens.caption_ids("a dog barks")
    start = len(row) - 4
    with torch.no_grad():
        logits = llm(input_ids=torch.tensor([row])).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[start - 1 : -1], torch.tensor(row[start:]))
    padded = [row, row[:5]]  # a shorter row in the batch changes nothing
    got = mean_ce_from(llm, padded, [start, 5], tokens.tokenizer.pad_token_id, batch_size=2)
    alone = mean_ce_from(llm, [row], [start], tokens.tokenizer.pad_token_id, batch_size=1)
    assert alone == pytest.approx(float(expected), rel=1e-5)
    assert got == pytest.approx(alone, rel=1e-5)  # row 2 scores nothing: its start is its end


def test_the_cli_prints_the_table_and_writes_json(tmp_path):
    from assembly_fixtures import shared_llm_dir

    data = tmp_path / "data"
    data.mkdir()
    lines = [json.dumps({"audio": f"c{i}.wav", "captions": clip}) for i, clip in enumerate(CLIPS)]
    (data / "val.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "diag.json"
    cmd = [
        sys.executable, "-m", "distillcaps.cli", "diagnose", "context", "--no-retrieval",
        "--output", str(out), "model.llm.name=hf", f"model.llm.path={shared_llm_dir()}",
        f"data.dataset_dir={data}", "data.dataset_format=jsonl", "retrieval.top_k=2",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1, done.stderr  # the fixture LM never saw a context: targets unmet
    assert "| own |" in done.stdout and "NOT MET" in done.stdout
    written = json.loads(out.read_text())
    assert written["num_captions"] == 8 and set(written["context_ce"]) == set(CONTEXTS)
    assert written["context_ce"]["retrieved"] is None and written["induction_ce"] > 0


def test_the_docs_show_the_committed_diagnostics_of_the_tiny_lm_and_smollm2():
    """docs/model.md renders docs/results/context_diagnostic/{tiny,smol}.json; the tiny LM met every
    target, SmolLM2 the three of reading its context."""
    from pathlib import Path

    from distillcaps.model.context_diagnostic import ContextDiagnosis

    root = Path(__file__).resolve().parents[2]
    results = root / "docs/results/context_diagnostic"
    tiny, smol = (
        ContextDiagnosis(**json.loads((results / f"{n}.json").read_text())) for n in ("tiny", "smol")
    )
    for diagnosis in (tiny, smol):
        assert diagnosis.markdown() in (root / "docs/model.md").read_text()
    assert not tiny.unmet() and None not in tiny.targets.values()
    assert smol.unmet() == ["induction <= 1"] and smol.context_ce["own"] <= smol.context_ce["none"] - 1.0
