"""Training checkpoints: optimizer + scheduler state round-trip through safetensors/JSON (no pickle)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from distillcaps.model.checkpoint import WEIGHTS_NAME
from distillcaps.training.train_state import TrainState, load_train_checkpoint, save_train_checkpoint


class StandIn(nn.Module):
    """The two checkpoint methods of DistillCapsModel that training uses, on a tiny module."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def save_checkpoint(self, directory):
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS_NAME))

    def load_trainable_state_dict(self, state, source=""):
        self.load_state_dict(state)


def make(seed):
    torch.manual_seed(seed)
    model = StandIn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-6)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 2, 10)
    return model, optimizer, scheduler


def step(model, optimizer, scheduler):
    loss = model.layer(torch.ones(4, 3)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def test_restored_training_continues_exactly(tmp_path):
    model, optimizer, scheduler = make(0)
    for _ in range(3):
        step(model, optimizer, scheduler)
    state = TrainState(epoch=1, global_step=3, best_metric=0.5, best_epoch=1, history=[{"epoch": 1}])
    save_train_checkpoint(tmp_path / "ckpt", model, optimizer, scheduler, state)
    assert set(load_file(str(tmp_path / "ckpt" / "optimizer.safetensors"))) >= {"0.exp_avg", "0.exp_avg_sq"}

    restored, opt2, sched2 = make(1)  # different initial weights: everything must come from the files
    loaded = load_train_checkpoint(tmp_path / "ckpt", restored, opt2, sched2)
    assert loaded == state
    assert sched2.get_last_lr() == scheduler.get_last_lr()
    step(model, optimizer, scheduler)
    step(restored, opt2, sched2)
    for a, b in zip(model.parameters(), restored.parameters()):
        torch.testing.assert_close(a, b)


def test_resuming_falls_back_past_a_damaged_newest_checkpoint(tmp_path, capsys):
    from distillcaps.training.checkpoints import latest_checkpoint
    from distillcaps.training.train_state import MODEL_DIR, checkpoint_damage

    model, optimizer, scheduler = make(0)
    ray_dir = tmp_path / "run" / "ray"
    for epoch in (1, 2, 3):
        step(model, optimizer, scheduler)
        state = TrainState(epoch=epoch, global_step=epoch, history=[{"epoch": epoch}])
        save_train_checkpoint(ray_dir / f"checkpoint_{epoch}", model, optimizer, scheduler, state)
    assert latest_checkpoint(tmp_path / "run") == ray_dir / "checkpoint_3"

    weights = ray_dir / "checkpoint_3" / MODEL_DIR / WEIGHTS_NAME  # a copy cut off by a crash
    weights.write_bytes(weights.read_bytes()[:-8])
    assert "bytes" in checkpoint_damage(ray_dir / "checkpoint_3")
    assert latest_checkpoint(tmp_path / "run") == ray_dir / "checkpoint_2"
    assert "skipping the damaged checkpoint" in capsys.readouterr().out

    (ray_dir / "checkpoint_2" / "train_state.json").write_text('{"epoch": 2, "glo')
    assert latest_checkpoint(tmp_path / "run") == ray_dir / "checkpoint_1"


def test_best_and_last_are_replaced_whole(tmp_path):
    from distillcaps.training.checkpoints import copy_model_checkpoints

    model, optimizer, scheduler = make(0)
    for epoch in (1, 2):
        state = TrainState(epoch=epoch, global_step=epoch)
        save_train_checkpoint(tmp_path / f"c{epoch}", model, optimizer, scheduler, state)
        (tmp_path / f"c{epoch}" / "model" / "which").write_text(str(epoch))
    copy_model_checkpoints(tmp_path / "c1", tmp_path / "c1", tmp_path / "out")
    best, last = copy_model_checkpoints(tmp_path / "c1", tmp_path / "c2", tmp_path / "out")
    assert (best / "which").read_text() == "1" and (last / "which").read_text() == "2"
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir()) == ["best", "last"]


def test_a_resume_takes_the_newest_whole_checkpoint_of_rays_the_resume_folder_and_the_ray_folder(tmp_path):
    from contextlib import nullcontext

    from distillcaps.training.loop import restore_folder

    class Handed:  # what ray.train.get_checkpoint() gives a restarted worker group
        def __init__(self, folder):
            self.folder = folder

        def as_directory(self):
            return nullcontext(str(self.folder))

    model, optimizer, scheduler = make(0)
    ray_dir = tmp_path / "ray"
    for step in (3, 6, 9):  # step checkpoints of epoch 1
        state = TrainState(step_in_epoch=step, global_step=step)
        save_train_checkpoint(ray_dir / f"checkpoint_{step}", model, optimizer, scheduler, state)

    # Ray's controller had collected the report of step 6, not yet that of step 9
    with restore_folder(Handed(ray_dir / "checkpoint_6"), None, ray_dir) as folder:
        assert folder == ray_dir / "checkpoint_9"
    with restore_folder(None, None, tmp_path / "no-such-run") as folder:
        assert folder is None  # a fresh start
    (ray_dir / "checkpoint_9" / "complete.json").unlink()  # its save was cut off
    with restore_folder(None, ray_dir / "checkpoint_9", ray_dir) as folder:
        assert folder == ray_dir / "checkpoint_6"
