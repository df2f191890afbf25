"""benchmarks/audio_frontend.py runs and writes a well-formed JSON (structure only, never speed)."""

from __future__ import annotations


def test_audio_frontend_quick_small(bench):
    data = bench("audio_frontend.py", "--quick", "--clips", "2", "--seconds", "1", "--repeats", "2")
    names = {c["name"] for c in data["cases"]}
    assert {
        "decode@44100",
        "decode+resample+logmel@44100",
        "decode@16000",
        "decode+resample+logmel@16000",
    } <= names
    assert "decode+cached-kernel-resample@44100" in names  # the measured alternative
    assert all(c["unit"] == "clips" for c in data["cases"])
    assert len(data["findings"]) == 2
