import csv
import json

import pytest

from distillcaps.data.batches import split_rows
from distillcaps.data.records import DATASET_READERS, DatasetFormatError, read_records


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


CLOTHO_HEADER = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]


def make_clotho(root, write_tone):
    for split, names in {"development": ["a.wav", "b b.wav"], "evaluation": ["c.wav"]}.items():
        for name in names:
            write_tone(root / split / name)
        rows = [[n] + [f"{n} caption {i}" for i in range(1, 6)] for n in names]
        write_csv(root / f"clotho_captions_{split}.csv", CLOTHO_HEADER, rows)
    return root


def test_registry_lists_the_three_formats():
    import distillcaps.data.readers  # noqa: F401  (read_records imports it on first use)

    assert DATASET_READERS.names() == ["audiocaps", "clotho", "jsonl"]


def test_clotho_reader(tmp_path, tone):
    root = make_clotho(tmp_path, tone)
    dev = read_records(root, "clotho", "dev")
    assert [r.fname for r in dev] == ["a.wav", "b b.wav"]
    assert dev[1].path == root / "development" / "b b.wav"
    assert dev[1].captions == [f"b b.wav caption {i}" for i in range(1, 6)]
    assert (dev[1].dataset, dev[1].subset, dev[1].index) == ("clotho", "dev", 1)
    assert [r.fname for r in read_records(root, "clotho", "eval")] == ["c.wav"]
    rows = split_rows(dev, {r.fname: [] for r in dev}, per="caption")  # one training row per caption
    assert len(rows) == 10
    assert (rows[6]["fname"], rows[6]["caption"]) == (dev[1].fname, "b b.wav caption 2")


def test_clotho_errors_name_file_and_column(tmp_path, tone):
    root = make_clotho(tmp_path, tone)
    with pytest.raises(FileNotFoundError, match="clotho_captions_validation.csv"):
        read_records(root, "clotho", "val")
    with pytest.raises(DatasetFormatError, match="unknown Clotho subset 'train'"):
        read_records(root, "clotho", "train")
    write_csv(root / "clotho_captions_validation.csv", ["file_name", "caption_1"], [["x.wav", "hi"]])
    with pytest.raises(
        DatasetFormatError, match=r"clotho_captions_validation.csv: missing column\(s\) caption_2"
    ):
        read_records(root, "clotho", "val")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_records(tmp_path / "nowhere", "clotho", "dev")
    with pytest.raises(KeyError, match="unknown dataset format 'wavcaps'"):
        read_records(root, "wavcaps", "dev")


AUDIOCAPS_HEADER = ["audiocap_id", "youtube_id", "start_time", "caption"]


def test_audiocaps_groups_rows_by_clip_flat_layout(tmp_path, tone):
    write_csv(
        tmp_path / "train.csv", AUDIOCAPS_HEADER, [[1, "abc", 30, "a dog barks"], [2, "xyz", 0, "rain"]]
    )
    rows = [[10 + i, "abc", 30, f"ref {i}"] for i in range(5)] + [
        [20 + i, "def", 10, f"d {i}"] for i in range(5)
    ]
    write_csv(tmp_path / "val.csv", AUDIOCAPS_HEADER, rows)
    tone(tmp_path / "train" / "abc.wav")
    tone(tmp_path / "train" / "Yxyz.wav")  # AudioSet-style name
    tone(tmp_path / "val" / "abc.wav")
    tone(tmp_path / "val" / "Ydef.wav")

    train = read_records(tmp_path, "audiocaps", "train")
    assert [(r.fname, r.captions) for r in train] == [("abc.wav", ["a dog barks"]), ("Yxyz.wav", ["rain"])]
    assert train[1].path == tmp_path / "train" / "Yxyz.wav"
    val = read_records(tmp_path, "audiocaps", "val")
    assert len(val) == 2 and val[0].captions == [f"ref {i}" for i in range(5)]
    assert val[1].extra["youtube_id"] == "def" and val[1].extra["audiocap_ids"] == [
        str(20 + i) for i in range(5)
    ]
    assert all(r.dataset == "audiocaps" and r.subset == "val" for r in val)


def test_audiocaps_aac_datasets_layout_and_missing_audio(tmp_path, tone):
    root = tmp_path / "AUDIOCAPS"
    write_csv(root / "test.csv", AUDIOCAPS_HEADER, [[1, "abc", 30, "one"], [2, "gone", 0, "two"]])
    tone(root / "audio_32000Hz" / "test" / "abc_30.flac", sr=32_000)
    records = read_records(tmp_path, "audiocaps", "test")  # the aac-datasets root also works
    assert records[0].path == root / "audio_32000Hz" / "test" / "abc_30.flac"
    # A clip whose audio was never downloaded keeps an expected path; loading it names the file.
    assert records[1].path == root / "audio_32000Hz" / "test" / "gone.wav"
    assert not records[1].path.exists()


def test_audiocaps_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.csv"):
        read_records(tmp_path, "audiocaps", "train")
    write_csv(tmp_path / "train.csv", ["youtube_id", "caption"], [["abc", "x"]])
    with pytest.raises(DatasetFormatError, match=r"missing column\(s\) audiocap_id, start_time"):
        read_records(tmp_path, "audiocaps", "train")
    with pytest.raises(DatasetFormatError, match="valid subsets: train, val, test"):
        read_records(tmp_path, "audiocaps", "dev")


def test_jsonl_manifest(tmp_path, tone):
    tone(tmp_path / "clips" / "one.wav")
    lines = [
        {"audio": "clips/one.wav", "captions": ["first", " second "]},
        {"audio": str(tmp_path / "abs.wav"), "captions": ["x"], "fname": "named"},
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    records = read_records(tmp_path, "jsonl", "train")
    assert records[0].path == tmp_path / "clips" / "one.wav"
    assert records[0].captions == ["first", "second"] and records[0].fname == "clips/one.wav"
    assert records[1].path == tmp_path / "abs.wav" and records[1].fname == "named"
    assert (records[1].subset, records[1].index, records[1].dataset) == ("train", 1, "jsonl")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"captions": ["x"]}', "line 1: missing key 'audio'"),
        ('{"audio": "a.wav"}', "line 1: missing key 'captions'"),
        ('{"audio": "a.wav", "captions": "x"}', "'captions' must be a list of strings"),
        ('{"audio": "a.wav", "captions": []}', "'captions' is empty"),
        ("not json", "line 1: not valid JSON"),
    ],
)
def test_jsonl_errors_name_line_and_key(tmp_path, line, message):
    (tmp_path / "val.jsonl").write_text(line + "\n")
    with pytest.raises(DatasetFormatError, match=message):
        read_records(tmp_path, "jsonl", "val")


def test_jsonl_missing_manifest_lists_subsets(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"eval.jsonl \(subsets here: train\)"):
        read_records(tmp_path, "jsonl", "eval")
