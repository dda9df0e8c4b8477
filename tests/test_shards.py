"""WebDataset shards: packing (manifest, atomic files, re-encoding), streaming order (determinism, rank and
worker splits), resuming, mixing proportions, bad samples, and items equal to the file datasets' items."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from allinone_lab.data import DataConfig, MixtureDataset, VideoReadError, collate, corpus_dataset
from allinone_lab.data import shards as shards_module
from allinone_lab.data.corpus import CorpusConfig, build_corpus, sha256_file
from allinone_lab.data.prepare import build_dataset
from allinone_lab.data.shards import MANIFEST, ShardDataset, ShardSource, pack_shards

CFG = DataConfig(num_frames=3, image_size=32, max_text_len=16, mean=(0.5,) * 3, std=(0.5,) * 3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_corpus(CorpusConfig(size="smoke", image_size=32), tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def packs(corpus, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("shards")
    for split in ("pairs_train", "retrieval_train"):
        pack_shards(corpus, split, out / split, max_count=10)
    return {"pairs": out / "pairs_train", "retrieval": out / "retrieval_train"}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


def test_pack_writes_shards_index_and_manifest(corpus, packs):
    m = json.loads((packs["pairs"] / MANIFEST).read_text())
    assert m["count"] == 48 and [s["count"] for s in m["shards"]] == [10, 10, 10, 10, 8]
    assert [s["first"] for s in m["shards"]] == [0, 10, 20, 30, 40]
    assert m["source_manifest_sha256"] == sha256_file(corpus / "manifest.json")
    assert m["fields"] == ["json", "mask.npz", "video.mp4"] and m["reencoded"] is None
    assert m["class"] == "PairsDataset" and m["train"] is True
    for s in m["shards"]:
        assert sha256_file(packs["pairs"] / s["name"]) == s["sha256"]
    assert not [p for p in packs["pairs"].iterdir() if ".tmp" in p.name]  # nothing left under a temporary name
    index = np.load(packs["pairs"] / "index.npy")
    assert index.shape == (48, 3) and index[:10, 0].tolist() == [0] * 10
    source = ShardSource(packs["pairs"])
    assert json.loads(source.fetch(13)["json"]) == json.loads(
        (corpus / "annotations" / "pairs_train.jsonl").read_text().splitlines()[13])
    with pytest.raises(FileExistsError, match="shards.json exists"):
        pack_shards(corpus, "pairs_train", packs["pairs"])
    with pytest.raises(ValueError, match="max_count=0"):
        pack_shards(corpus, "pairs_train", packs["pairs"], max_count=0, force=True)


def test_items_and_batches_equal_the_file_dataset(corpus, packs):
    shards = ShardDataset(packs["pairs"], CFG, seed=3, batch_size=4, streams_per_rank=2)
    files = corpus_dataset("pairs", "train", CFG, root=corpus, seed=3)
    order = shards.order()
    assert sorted(order) == list(range(48))
    loader = DataLoader(files, batch_size=4, sampler=order, collate_fn=collate)
    streamed = list(shards)
    assert len(streamed) == len(shards) == 12
    for from_shards, from_files in zip(streamed, loader, strict=True):
        _same(from_shards, from_files)
    assert shards.stats["shards"]["fetched"] > 0  # VTM negatives read by byte range
    # Two DataLoader workers (each its own scratch directory) give the same batches.
    for from_workers, from_process in zip(DataLoader(shards, batch_size=None, num_workers=2), streamed, strict=True):
        _same(from_workers, from_process)
    shards.set_epoch(1)
    files.set_epoch(1)
    first = next(iter(shards))
    _same(first, collate([files[i] for i in shards.order()[:4]]))


def test_order_is_deterministic_and_splits_are_disjoint_and_cover(packs, monkeypatch):
    def order(**kw):
        return ShardDataset(packs["retrieval"], CFG, **{"seed": 1, "batch_size": 2, **kw}).order()

    assert order(streams_per_rank=4) == order(streams_per_rank=4)
    assert order(streams_per_rank=4) != order(seed=2, streams_per_rank=4)
    assert order(streams_per_rank=4) == order(streams_per_rank=4, rank=0, world_size=1)
    ranks = [order(rank=r, world_size=3, streams_per_rank=2) for r in range(3)]
    assert all(len(r) == 16 for r in ranks)  # 48 rows / (3 ranks x 2 streams), whole batches of 2
    assert sorted(sum(ranks, [])) == list(range(48))
    unshuffled = order(shuffle=False, streams_per_rank=1)
    assert unshuffled == list(range(48))
    # DataLoader workers: two workers give the batches of order(), in order.
    ds = ShardDataset(packs["retrieval"], CFG, seed=1, batch_size=4, streams_per_rank=4, rank=1, world_size=2)
    got = [b["index"].tolist() for b in DataLoader(ds, batch_size=None, num_workers=2)]
    expected = ds.order()
    assert sum(got, []) == expected and len(got) == 4  # 48 / (2 ranks x 4 streams) = 6: one batch of 4 each
    monkeypatch.setattr(shards_module, "get_worker_info", lambda: SimpleNamespace(num_workers=3, id=0))
    with pytest.raises(ValueError, match="num_workers=3 does not divide streams_per_rank=4"):
        next(iter(ds))


def test_resume_gives_exactly_the_remaining_samples(packs, monkeypatch):
    full = ShardDataset(packs["retrieval"], CFG, seed=5, batch_size=3, streams_per_rank=2)
    whole = full.order()
    opened: list[tuple[int, list[int]]] = []
    real = ShardSource.read_shard

    def spy(self, shard, rows):
        opened.append((shard, list(rows)))
        return real(self, shard, rows)

    monkeypatch.setattr(ShardSource, "read_shard", spy)
    resumed = ShardDataset(packs["retrieval"], CFG, seed=5, batch_size=3, streams_per_rank=2)
    resumed.set_position(0, 7)
    assert resumed.order() == whole[7 * 3:] and len(resumed) == full.batches_per_epoch - 7
    got = [i for batch in resumed for i in batch["index"].tolist()]
    assert got == whole[7 * 3:]
    # Only the rows still to come were asked of the shards: the consumed ones were skipped arithmetically.
    assert sorted(r for _, rows in opened for r in rows) == sorted(whole[7 * 3:])
    with pytest.raises(ValueError, match="batches_done=99"):
        resumed.set_position(0, 99)


def test_mixing_follows_the_mixture_rule(packs):
    weights = {"pairs": 3, "retrieval": 1}
    mix = ShardDataset({"pairs": packs["pairs"], "retrieval": packs["retrieval"]}, CFG, weights=weights,
                       length=100, streams_per_rank=1, seed=4)  # fmt: skip
    assert mix.counts == {"pairs": 75, "retrieval": 25}
    order = mix.order()
    reference = MixtureDataset({"pairs": range(48), "retrieval": range(48)}, weights, length=100, seed=4)
    assert [name for name, _ in order] == [reference.locate(i)[0] for i in range(100)]
    uses = np.bincount([row for name, row in order if name == "pairs"], minlength=48)
    assert set(uses.tolist()) == {1, 2}  # 75 of 48 rows: each used once or twice (27 twice)
    assert int((uses == 2).sum()) == 27
    assert len({row for name, row in order if name == "retrieval"}) == 25  # sub-sampled without repeats
    small = ShardDataset({"pairs": packs["pairs"], "retrieval": packs["retrieval"]}, CFG, weights=weights,
                         length=8, streams_per_rank=1, seed=4)  # fmt: skip
    items = list(small)
    assert [(it["source"], it["index"]) for it in items] == small.order()
    with pytest.raises(ValueError, match="weights keys"):
        ShardDataset({"pairs": packs["pairs"]}, CFG, weights={"other": 1})


def test_bad_sample_is_named_and_counted(corpus, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root, ignore=shutil.ignore_patterns("frames", "*.table"))
    rows = [json.loads(line) for line in (root / "annotations" / "retrieval_train.jsonl").read_text().splitlines()]
    (root / rows[5]["video"]).write_bytes(b"\x00\x00\x00\x18ftypmp42 this is no video" * 4)
    pack_shards(root, "retrieval_train", tmp_path / "shards", max_count=10)
    skip = DataConfig(**{**CFG.__dict__, "on_error": "skip"})
    shards = ShardDataset(tmp_path / "shards", skip, seed=0, streams_per_rank=1, shuffle=False)
    items = list(shards)
    assert len(items) == 48  # replaced, never dropped
    summary = shards.skip_summary(log_it=False)
    assert summary["count"] == 1
    (path, reason), = summary["files"].items()
    assert path.endswith("retrieval_train-000000.tar#000000005.video.mp4") and "decord" in reason
    assert "allinone-shards-" not in reason  # the scratch copy is never named
    assert items[5]["skipped"] == [path]
    files = corpus_dataset("retrieval", "train", skip, root=root, cache_frames=False, seed=0)
    _same({k: v for k, v in items[5].items() if k != "skipped"},
          {k: v for k, v in files[5].items() if k != "skipped"})
    assert [(e["item"], e["row"]) for e in files.skipped_files()] == \
        [(e["item"], e["row"]) for e in shards.skipped_files()]  # fmt: skip
    strict = ShardDataset(tmp_path / "shards", CFG, seed=0, streams_per_rank=1, shuffle=False)
    with pytest.raises(VideoReadError, match=r"#000000005\.video\.mp4"):
        list(strict)


def test_pipe_shards_and_reencoding(corpus, packs, tmp_path):
    pipe = ShardDataset(f"pipe:cat {packs['retrieval'] / MANIFEST}", CFG, seed=2, batch_size=2,
                        streams_per_rank=2, url=f"pipe:cat {packs['retrieval']}/{{name}}")  # fmt: skip
    local = ShardDataset(packs["retrieval"], CFG, seed=2, batch_size=2, streams_per_rank=2)
    assert pipe.order() == local.order()
    for a, b in zip(list(pipe)[:3], list(local)[:3], strict=True):
        _same(a, b)
    with pytest.raises(ValueError, match="pass url="):
        ShardSource(f"pipe:cat {packs['retrieval'] / MANIFEST}")
    m = pack_shards(corpus, "cloze_test", tmp_path / "small", short_side=16)
    assert m["reencoded"]["videos"] == len({json.loads(s)["video"] for s in
                                            (corpus / "annotations" / "cloze_test.jsonl").read_text().splitlines()
                                            if s}) or m["reencoded"]["videos"] == m["count"]  # fmt: skip
    assert m["reencoded"]["gop"] == 16
    small = ShardDataset(tmp_path / "small", CFG, streams_per_rank=1)
    item = next(iter(small))
    assert item["video"].shape == (3, 3, 32, 32) and item["mlm_labels"].ne(-100).any()


def test_downstream_formats_pack_and_read_like_the_files(tmp_path):
    from allinone_lab.data.fixtures import build_release_root

    root = build_release_root(tmp_path / "fixtures", ["vcr", "tgif-qa", "msrvtt-qa", "hmdb51", "msrvtt-mc"])
    cases = [("vcr", "qa_val", None), ("tgif-qa", "action_test", None), ("tgif-qa", "frameqa_train", None),
             ("msrvtt-qa", "test", None), ("hmdb51", "test1", None), ("msrvtt-mc", "test", None)]  # fmt: skip
    for name, split, subtask in cases:
        out = tmp_path / f"{name}-{split}"
        m = pack_shards(root / name, split, out, subtask=subtask)
        assert m["missing_media"]["count"] == 0, name
        shards = ShardDataset(out, CFG, streams_per_rank=1, seed=0)
        files = build_dataset(name, root / name, split, CFG, seed=0)
        item = next(iter(shards))
        _same(item, files[item["index"]])


class _RangeHandler:
    """A static file server on localhost that answers ``Range: bytes=a-b`` with 206 and those bytes, as object
    stores and web servers do (``http.server`` alone ignores the header)."""

    @staticmethod
    def serve(directory: Path):
        import functools
        import http.server
        import re as re_
        import threading

        class Handler(http.server.SimpleHTTPRequestHandler):
            ranges = 0

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                match = re_.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                if not match:
                    return super().do_GET()
                data = Path(self.translate_path(self.path)).read_bytes()
                a, b = int(match[1]), int(match[2])
                Handler.ranges += 1
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {a}-{b}/{len(data)}")
                self.send_header("Content-Length", str(b - a + 1))
                self.end_headers()
                self.wfile.write(data[a:b + 1])

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 functools.partial(Handler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, Handler


def test_shards_over_http_read_like_local_ones_with_byte_ranges_for_negatives(packs, tmp_path):
    """An http pack (here a localhost server): the manifest, the side files (fetched once, sha256-checked)
    and the shards over http, another row's video (a VTM negative) by a byte-range request; the same batches
    as the local pack, nothing stood in."""
    server, handler = _RangeHandler.serve(packs["pairs"])
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{MANIFEST}"
        remote = ShardDataset(ShardSource(url, cache_dir=tmp_path / "cache"), CFG, seed=2, batch_size=4,
                              streams_per_rank=2)
        local = ShardDataset(packs["pairs"], CFG, seed=2, batch_size=4, streams_per_rank=2)
        got, want = list(remote), list(local)
    finally:
        server.shutdown()
    assert len(got) == len(want) == len(local) > 0
    for a, b in zip(got, want, strict=True):
        _same(a, b)
    stats = remote.stats["shards"]
    assert stats["streamed"] == len(got) * 4 and stats["fetched"] > 0 and stats["stood_in"] == 0
    assert handler.ranges == stats["fetched"]  # each negative's video: one range request
    assert (tmp_path / "cache").exists() and any((tmp_path / "cache").rglob("index.npy"))
