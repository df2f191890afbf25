"""Slow: the synthetic benchmark's event classes and relations can be learned from the audio alone."""

import json

import pytest
import torch

from distillcaps.data import load_audio, log_mel, read_records
from distillcaps.data.synth import EVENT_CLASSES, SynthSettings, write_synthetic_dataset

RELATIONS = ["single", "sequence", "overlap"]


def pooled_features(root, subset, scenes):
    """Per clip: mean/std/max of each mel band, mean frame-to-frame change, and a coarse 8-band x
    10-segment time profile; targets: the clip's event classes and its relation."""
    names = EVENT_CLASSES.names()
    features, classes, relations = [], [], []
    for record in read_records(root, "clotho", subset):
        mel = log_mel(load_audio(record.path))[:, :500]  # (64, 500) for 5 s clips
        profile = mel.reshape(8, 8, 10, 50).mean(dim=(1, 3)).flatten()
        change = torch.diff(mel, dim=1).abs().mean(1)
        features.append(torch.cat([mel.mean(1), mel.std(1), mel.amax(1), change, profile]))
        scene = scenes[record.fname]
        target = torch.zeros(len(names))
        for event in scene["events"]:
            target[names.index(event["label"])] = 1
        classes.append(target)
        relations.append(RELATIONS.index(scene["relation"]))
    return torch.stack(features), torch.stack(classes), torch.tensor(relations)


@pytest.mark.slow
def test_a_small_probe_recovers_classes_and_relations(tmp_path):
    torch.manual_seed(0)
    root = write_synthetic_dataset(tmp_path, SynthSettings(seed=0, num_train=400, num_val=0, num_eval=100))
    scenes = {s["file_name"]: s for s in map(json.loads, (root / "scenes.jsonl").read_text().splitlines())}
    x_train, y_train, r_train = pooled_features(root, "dev", scenes)
    x_test, y_test, r_test = pooled_features(root, "eval", scenes)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-5
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    n = y_train.shape[1]
    probe = torch.nn.Sequential(
        torch.nn.Linear(x_train.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, n + 3)
    )
    optimizer = torch.optim.AdamW(probe.parameters(), 1e-3, weight_decay=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        out = probe(x_train)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, :n], y_train)
        loss = loss + torch.nn.functional.cross_entropy(out[:, n:], r_train)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = probe(x_test)
    predicted = (out[:, :n] > 0).float()
    micro_f1 = 2 * (predicted * y_test).sum() / (predicted.sum() + y_test.sum())
    relation_accuracy = (out[:, n:].argmax(1) == r_test).float().mean()
    assert micro_f1 > 0.75, float(micro_f1)  # measured 0.89 on 600/150 clips
    assert relation_accuracy > 0.6, float(relation_accuracy)  # chance: ~0.4 (the majority relation)
