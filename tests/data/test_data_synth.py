"""The synthetic benchmark: determinism, captions true to the scenes, audible relations, domains."""

import collections
import json
import re

import numpy as np
import pytest
import soundfile as sf

from distillcaps.data.records import read_records
from distillcaps.data.synth import (
    DOMAINS,
    EVENT_CLASSES,
    SynthSettings,
    compose_scene,
    write_synthetic_dataset,
)
from distillcaps.data.synth.render import render_scene
from distillcaps.data.synth.scene import MIN_GAP, Scene, SceneEvent

SMALL = SynthSettings(seed=3, num_train=24, num_val=4, num_eval=6)

# An independent table of the word(s) that name each class in a caption.
CLASS_WORDS = {
    "dog_bark": ["dog"],
    "knocking": ["knock"],
    "bell": ["bell"],
    "alarm_beep": ["alarm", "beep"],
    "car_horn": ["horn", "honk"],
    "phone_ring": ["phone"],
    "bird_chirp": ["bird"],
    "rain": ["rain"],
    "wind": ["wind"],
    "engine_hum": ["engine", "motor"],
    "siren": ["siren"],
    "footsteps": ["walk", "footstep"],
    "flowing_water": ["water"],
    "clapping": ["clap", "applau"],
    "speech_babble": ["people", "crowd", "voices", "chatter", "talk"],
    "thunder": ["thunder"],
    "typing": ["typ", "keyboard"],
    "crickets": ["cricket"],
}
SEQUENCE_WORDS = ["followed by", "then", "before", "after"]
OVERLAP_WORDS = ["while", " as ", "at the same time", "simultaneously"]
COUNT_WORDS = {1: ["once", "a single time"], 2: ["twice", "two times"]}
SEVERAL_WORDS = ["several times", "repeatedly", "multiple times", "a few times"]


@pytest.fixture(scope="module")
def outdoor(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "outdoor", SMALL)


@pytest.fixture(scope="module")
def scenes(outdoor):
    return [json.loads(line) for line in (outdoor / "scenes.jsonl").read_text().splitlines()]


def test_clotho_layout_readable(outdoor):
    for subset, size in {"dev": 24, "val": 4, "eval": 6}.items():
        records = read_records(outdoor, "clotho", subset)
        assert len(records) == size and all(len(r.captions) == 5 for r in records)
    audio, sr = sf.read(records[0].path, dtype="int16")
    info = sf.info(records[0].path)
    assert (sr, info.channels, info.subtype, len(audio)) == (16_000, 1, "PCM_16", 80_000)


def test_same_seed_gives_byte_identical_files_and_other_seed_differs(outdoor, tmp_path):
    again = write_synthetic_dataset(tmp_path / "again", SMALL, workers=2)  # also: processes don't matter
    files = sorted(p.relative_to(outdoor) for p in outdoor.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (outdoor / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = write_synthetic_dataset(
        tmp_path / "other", SynthSettings(seed=4, num_train=2, num_val=0, num_eval=0)
    )
    a = (outdoor / "development" / "outdoor_dev_00000.wav").read_bytes()
    assert a != (other / "development" / "outdoor_dev_00000.wav").read_bytes()


def mentions(caption: str, label: str) -> bool:
    return any(word in caption.lower() for word in CLASS_WORDS[label])


def test_captions_agree_with_scene_structure(scenes):
    assert set(CLASS_WORDS) == set(EVENT_CLASSES.names())
    relations = collections.Counter(s["relation"] for s in scenes)
    assert set(relations) == {"single", "sequence", "overlap"}
    for scene in scenes:
        labels = {e["label"] for e in scene["events"]}
        foreground = [e for e in scene["events"] if e["role"] == "foreground"]
        background = [e for e in scene["events"] if e["role"] == "background"]
        assert len(scene["captions"]) == 5 and len(set(scene["captions"])) == 5
        for caption in scene["captions"]:
            text = caption.lower()
            assert 5 <= len(caption.split()) <= 20, caption
            for label in CLASS_WORDS:
                assert mentions(caption, label) == (label in labels), (caption, labels)
            assert ("in the background" in text or "background of" in text) == bool(background), caption
            assert ("followed by" in text) <= (scene["relation"] == "sequence"), caption
            assert ("while" in text) <= (scene["relation"] == "overlap"), caption
            if scene["relation"] == "sequence":
                assert any(w in text for w in SEQUENCE_WORDS) and not any(w in text for w in OVERLAP_WORDS)
            if scene["relation"] == "overlap":
                assert any(w in text for w in OVERLAP_WORDS) and not any(w in text for w in SEQUENCE_WORDS)
            faint = any(e["loudness"] == "faint" for e in foreground)
            loud = any(e["loudness"] == "loud" for e in foreground)
            assert bool(re.search(r"faintly|softly|quietly", text)) == faint, caption
            assert ("loudly" in text) == loud, caption
            for event in foreground:
                if event["count"] is not None:
                    words = COUNT_WORDS.get(event["count"], SEVERAL_WORDS)
                    assert any(w in text for w in words), (caption, event["count"])


def test_sequence_captions_keep_time_order(scenes):
    for scene in (s for s in scenes if s["relation"] == "sequence"):
        first, second = [e for e in scene["events"] if e["role"] == "foreground"]
        for caption in scene["captions"]:
            if "followed by" in caption:
                before, after = caption.lower().split("followed by")
                assert mentions(before, first["label"]) and mentions(after, second["label"]), caption


def segment_rms(audio, sr, start, end):
    return np.sqrt(np.mean(audio[int(start * sr) : int(end * sr)] ** 2))


def test_relations_hold_in_time_and_in_the_audio(outdoor, scenes):
    checked = 0
    for scene in scenes:
        foreground = [e for e in scene["events"] if e["role"] == "foreground"]
        for event in scene["events"]:
            assert 0 <= event["onset"] < event["offset"] <= scene["clip_seconds"]
            if event["count"] is not None:
                bursts = event["bursts"]
                assert len(bursts) == event["count"]
                assert all(a[1] < b[0] for a, b in zip(bursts, bursts[1:]))  # separate, countable bursts
        if scene["relation"] == "sequence":
            first, second = foreground
            assert second["onset"] - first["offset"] >= MIN_GAP - 1e-9
            if not any(e["role"] == "background" for e in scene["events"]):
                # The gap is audibly quieter than the events: "followed by" can be heard.
                split = {"dev": "development", "val": "validation", "eval": "evaluation"}[scene["subset"]]
                audio, sr = sf.read(outdoor / split / scene["file_name"])
                gap = segment_rms(audio, sr, first["offset"] + 0.05, second["onset"] - 0.05)
                loudest = max(segment_rms(audio, sr, e["onset"], e["offset"]) for e in foreground)
                assert gap < loudest / 4, scene["file_name"]
                checked += 1
        if scene["relation"] == "overlap":
            a, b = foreground
            shared = min(a["offset"], b["offset"]) - max(a["onset"], b["onset"])
            assert shared >= 0.5 * min(a["offset"] - a["onset"], b["offset"] - b["onset"])
    assert checked > 0


def test_class_coverage_and_domain_shift():
    assert len(EVENT_CLASSES.names()) >= 15
    counts = {}
    for name in ("outdoor", "indoor"):
        rng = np.random.default_rng(0)
        domain = DOMAINS.get(name)
        counts[name] = collections.Counter(
            e.label for _ in range(400) for e in compose_scene(rng, domain, 5.0).events
        )
        assert len(counts[name]) >= 15
    share = {d: {k: v / sum(c.values()) for k, v in c.items()} for d, c in counts.items()}
    for label in ("typing", "knocking", "phone_ring"):
        assert share["indoor"][label] > 3 * share["outdoor"].get(label, 0)
    for label in ("dog_bark", "bird_chirp", "car_horn"):
        assert share["outdoor"][label] > 3 * share["indoor"].get(label, 0)


def test_indoor_acoustics_reverberate():
    """The same dry knock rings on after its end indoors (reverb), not outdoors."""
    knock = SceneEvent("knocking", "foreground", 1.0, 1.1, count=1, bursts=[(1.0, 1.1)])
    tails = {}
    for name in ("outdoor", "indoor"):
        scene = Scene("single", [knock], None, name, 3.0)
        audio = render_scene(np.random.default_rng(0), scene, DOMAINS.get(name), 16_000)
        tails[name] = np.sqrt(np.mean(audio[int(1.2 * 16_000) : int(1.4 * 16_000)] ** 2))
    assert tails["indoor"] > 2 * tails["outdoor"]


def test_indoor_captions_name_indoor_places(tmp_path):
    out = write_synthetic_dataset(
        tmp_path, SynthSettings(seed=0, num_train=12, num_val=0, num_eval=0, domain="indoor")
    )
    captions = [c for r in read_records(out, "clotho", "dev") for c in r.captions]
    assert not any(p in c for c in captions for p in DOMAINS.get("outdoor").places)
    assert any(p in c for c in captions for p in DOMAINS.get("indoor").places)
