"""A Train worker's imports leave out scikit-learn and torchvision and still import the model's modules."""

from __future__ import annotations

import subprocess
import sys

from distillcaps.training.lean_imports import UNUSED_IN_TRAIN_WORKERS, hide_unused_packages


def test_worker_modules_import_without_the_hidden_packages() -> None:
    code = """
import sys
from distillcaps.training.lean_imports import hide_unused_packages
print(hide_unused_packages())
from transformers import get_cosine_schedule_with_warmup
from transformers.utils import is_sklearn_available, is_torchvision_available
import distillcaps.training.loop, distillcaps.model.distillcaps_model, distillcaps.model.qformer
loaded = sorted({m.split('.')[0] for m, mod in sys.modules.items() if mod is not None})
print(is_sklearn_available(), is_torchvision_available(), 'sklearn' in loaded, 'torchvision' in loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    hidden, flags = out.stdout.strip().splitlines()[-2:]
    assert hidden == repr(list(UNUSED_IN_TRAIN_WORKERS))
    assert flags == "False False False False"


def test_an_imported_package_is_left_alone() -> None:
    assert hide_unused_packages(("json", "sys")) == []
    assert sys.modules["json"] is not None
