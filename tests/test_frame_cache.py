"""The built-in corpus's decoded-frame cache: the same tensors as decoding, keyed to the corpus, shared by
loader workers; and the corpus is the same whatever the number of processes that render it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from allinone_lab.data import DataConfig, collate
from allinone_lab.data.corpus import (
    CORPUS_TASKS,
    CorpusConfig,
    build_corpus,
    corpus_dataset,
    frame_cache,
    frame_cache_key,
)
from allinone_lab.data.video import FrameCache, load_cached_clip, load_clip, read_all_frames, write_video

CFG = CorpusConfig(size="smoke", image_size=32, seed=5)
DATA = DataConfig(num_frames=3, image_size=32, max_text_len=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                  temporal_word_mask_prob=1.0, temporal_negatives=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_corpus(CFG, cache_dir=tmp_path_factory.mktemp("cache"))


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if torch.is_tensor(a[key]):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_the_corpus_is_built_with_its_cache_and_each_row_is_the_decoded_video(corpus):
    cache = frame_cache(corpus, build=False)
    assert cache is not None and len(cache) == CFG.clips
    assert cache.frames.shape == (CFG.clips, CFG.num_frames, CFG.image_size, CFG.image_size, 3)
    assert cache.frames.dtype == np.uint8 and isinstance(cache.frames, np.memmap)
    assert cache.path.name == f"frames-{frame_cache_key(corpus)}.npy"
    for name, row in cache.index.items():
        decoded, decoder = read_all_frames(corpus / name)
        assert decoder == "decord"
        assert np.array_equal(cache.frames[row], decoded), name


@pytest.mark.parametrize("task", list(CORPUS_TASKS))
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_every_dataset_gives_the_same_items_from_the_cache_as_from_decoding(corpus, task, train):
    masks = task != "mc"
    cached = corpus_dataset(task, "train", DATA, CFG, root=corpus, train=train, with_masks=masks)
    decoded = corpus_dataset(task, "train", DATA, CFG, root=corpus, train=train, with_masks=masks,
                             cache_frames=False)
    assert isinstance(cached.frame_cache, FrameCache) and decoded.frame_cache is None
    for epoch in (0, 3):
        cached.set_epoch(epoch)
        decoded.set_epoch(epoch)
        for index in range(len(cached)):
            _same(cached[index], decoded[index])


def test_a_cached_clip_is_load_clip_bit_for_bit_with_its_frame_indices(corpus):
    cache = frame_cache(corpus)
    cfg = DataConfig(num_frames=3, image_size=24, resize_scale=1.5)  # a resize and a random crop too
    for name in list(cache.index)[:10]:
        for train in (True, False):
            meta_a, meta_b = {}, {}
            a = load_cached_clip(cache.get(name), cfg, train, np.random.default_rng(7), meta_a)
            b = load_clip(corpus / name, cfg, train, np.random.default_rng(7), meta=meta_b)
            assert torch.equal(a, b)
            assert meta_a["decoder"] == "cache" and meta_b["decoder"] == "decord"
            assert {k: v for k, v in meta_a.items() if k != "decoder"} == {
                k: v for k, v in meta_b.items() if k != "decoder"}


def test_a_changed_video_gets_a_new_key_and_never_reads_stale_frames(tmp_path):
    root = build_corpus(CFG, cache_dir=tmp_path)
    old = frame_cache(root)
    name = next(iter(old.index))
    frames, _ = read_all_frames(root / name)
    write_video(root / name, np.ascontiguousarray(255 - frames))
    stat = (root / name).stat()
    os.utime(root / name, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new time, however coarse the clock
    new = frame_cache(root)
    assert new.path != old.path and not old.path.exists()  # rebuilt under a new key, the stale one removed
    assert np.array_equal(new.get(name), read_all_frames(root / name)[0])
    assert not np.array_equal(new.get(name), frames)
    assert frame_cache_key(build_corpus(CorpusConfig(size="smoke", image_size=32, seed=6), cache_dir=tmp_path)) \
        != frame_cache_key(root)


def test_a_corpus_without_its_cache_gets_it_on_first_use(tmp_path, corpus):
    root = build_corpus(CFG, cache_dir=tmp_path)
    for path in (root / "frames").iterdir():
        path.unlink()
    assert frame_cache(root, build=False) is None
    ds = corpus_dataset("pairs", "train", DATA, CFG, root=root, train=True)  # builds it
    rebuilt = ds.frame_cache
    assert rebuilt is not None and rebuilt.path.is_file()
    reference = frame_cache(corpus)
    for name in rebuilt.index:
        assert np.array_equal(rebuilt.get(name), reference.get(name))


def test_the_cache_pickles_without_its_frames_and_workers_load_the_same_batches(corpus):
    ds = corpus_dataset("pairs", "train", DATA, CFG, root=corpus, train=True, seed=3)
    assert ds.frame_cache.frames is not None  # mapped in this process
    blob = pickle.dumps(ds.frame_cache)
    assert len(blob) < 100_000 and pickle.loads(blob)._frames is None
    ds.set_epoch(1)

    def batches(workers):
        loader = DataLoader(ds, batch_size=8, num_workers=workers, collate_fn=collate)
        return [batch for _, batch in zip(range(3), loader, strict=False)]

    for a, b in zip(batches(0), batches(1), strict=True):
        _same(a, b)


def test_rendering_on_two_processes_writes_the_same_corpus(tmp_path):
    cfg = CorpusConfig(size="smoke", image_size=32, num_clips=30, seed=2)
    one = build_corpus(cfg, cache_dir=tmp_path / "one", workers=1)
    two = build_corpus(cfg, cache_dir=tmp_path / "two", workers=2)

    def files(root):  # the reports hold the time taken; the cache's name, the files' times (its rows: below)
        return sorted(p.relative_to(root) for p in root.rglob("*")
                      if p.is_file() and p.name not in ("report.json", "report.md") and p.parent.name != "frames")

    assert files(one) == files(two) and len(files(one)) > 2 * cfg.clips
    for rel in files(one):
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    assert np.array_equal(frame_cache(one).frames, frame_cache(two).frames)
