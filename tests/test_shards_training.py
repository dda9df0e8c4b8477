"""Pre-training from packed shards (``data.pretrain_shards``): the loop streams collated micro-batches, resumes
exactly, and two processes train like one process accumulating, as with files; a wrong stream or pack is named
before any step."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from allinone_lab.data import DataConfig
from allinone_lab.data.corpus import build_corpus
from allinone_lab.data.shards import ShardDataset, pack_shards
from allinone_lab.train import load_checkpoint
from allinone_lab.train.jobs import pretrain, pretraining_shards
from allinone_lab.train.preflight import PreflightError
from allinone_lab.train.presets import preset
from allinone_lab.train.sampler import micro_batch_index

STEPS = 6


@pytest.fixture(scope="module")
def packs(tmp_path_factory) -> dict[str, Path]:
    root = build_corpus(preset("smoke").corpus)
    out = tmp_path_factory.mktemp("packs")
    pack_shards(root, "pairs_train", out / "pairs", max_count=7)
    pack_shards(root, "retrieval_train", out / "retrieval", max_count=7)
    return {"pairs": out / "pairs", "retrieval": out / "retrieval"}


def experiment(pack: Path, global_batch_size: int | None = None, **more):
    return preset("smoke").override(**{
        "data.pretrain_shards": {"corpus": str(pack)}, "data.shard_streams": 2,
        "train.max_steps": STEPS, "train.batch_size": 2, "train.global_batch_size": global_batch_size,
        "train.checkpoint_every": STEPS, "train.log_every": 1, "train.num_workers": 0, "train.device": "cpu",
        "model.dropout": 0.1, "model.drop_path_rate": 0.1, **more,
    })


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "videos_per_s"} for row in rows]


def test_micro_batches_are_the_same_however_the_global_batch_is_split(packs):
    """Micro-batch m of step s holds the same rows for 1 x 4, 2 x 2 and 4 x 1 (processes x accumulation)."""
    layouts = {}
    for world, accumulation in ((1, 4), (2, 2), (4, 1)):
        by_index = {}
        for rank in range(world):
            ds = ShardDataset(packs["pairs"], DataConfig(), seed=5, batch_size=2, rank=rank, world_size=world,
                              streams_per_rank=accumulation * 2, accumulation=accumulation)
            rows = ds.order()
            for n in range(len(rows) // 2):
                step, micro = divmod(n, accumulation)
                by_index[step, micro_batch_index(rank, micro, accumulation)] = rows[2 * n:2 * n + 2]
        layouts[world] = by_index
    assert layouts[1] == layouts[2] == layouts[4]
    assert sorted(layouts[1]) == [(s, m) for s in range(6) for m in range(4)]  # 48 pairs: 8 streams of 6
    with pytest.raises(ValueError, match="streams_per_rank=3 is not a multiple of accumulation=2"):
        ShardDataset(packs["pairs"], DataConfig(), batch_size=2, streams_per_rank=3, accumulation=2)


def test_pretraining_from_shards_resumes_exactly(packs, tmp_path):
    exp = experiment(packs["pairs"])
    straight = pretrain(exp, tmp_path / "a", progress=False)
    pretrain(exp, tmp_path / "b", stop_after=4, progress=False)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["batches_done"] == 4
    resumed = pretrain(exp, tmp_path / "b", progress=False)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(resumed)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    rows = metrics(tmp_path / "a")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert rows[-1]["epoch"] == 0 and all(r["mlm_loss"] > 0 for r in rows)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, pack: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        pretrain(experiment(Path(pack)), Path(out), progress=False)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_processes_on_shards_train_like_one_process_accumulating(packs, tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(packs["pairs"]), str(tmp_path / "ddp")), nprocs=2, join=True)
    pretrain(experiment(packs["pairs"], global_batch_size=4), tmp_path / "one", progress=False)
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["model"]
    keys = [k for k in a if a[k].is_floating_point()]
    diff = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in keys)
    norm = sum(float(a[k].double().pow(2).sum()) for k in keys)
    assert (diff / norm) ** 0.5 <= 1e-5
    for x, y in zip(metrics(tmp_path / "one"), metrics(tmp_path / "ddp"), strict=True):
        assert x["step"] == y["step"] and x["epoch"] == y["epoch"]
        for key in ("loss", "mlm_loss", "vtm_loss"):
            assert abs(x[key] - y[key]) <= 1e-4, (x["step"], key, x[key], y[key])


def test_a_stream_for_another_layout_or_worker_count_is_refused(packs, tmp_path):
    from allinone_lab.data import collate
    from allinone_lab.train import Pretraining, train
    from allinone_lab.train.jobs import load_model

    exp = experiment(packs["pairs"], global_batch_size=4)
    stream = pretraining_shards(exp)
    assert (stream.accumulation, stream.streams_per_rank, stream.batch_size) == (2, 4, 2)
    objective = Pretraining(load_model(exp), exp.train.loss_weights, exp.data.vtm_neg_prob)
    other = exp.train.replace(global_batch_size=None)
    with pytest.raises(ValueError, match=r"another run layout: accumulation=2 \(expected 1\)"):
        train(objective, stream, other, tmp_path / "a", collate_fn=collate, progress=False)
    with pytest.raises(ValueError, match=r"num_workers=3 does not divide the stream's streams_per_rank=4"):
        train(objective, stream, exp.train.replace(num_workers=3), tmp_path / "b", collate_fn=collate,
              progress=False)


def test_a_missing_or_wrong_pack_is_named_before_any_step(packs, tmp_path):
    exp = experiment(tmp_path / "nowhere").override(**{
        "data.pretrain_shards": {"webvid": str(tmp_path / "nowhere"), "howto": str(packs["retrieval"])},
        "data.pretrain_datasets": {"webvid": 1, "howto": 1}})
    with pytest.raises(PreflightError) as info:
        pretrain(exp, tmp_path / "run", progress=False)
    text = str(info.value)
    assert f"data.pretrain_shards['webvid'] ({tmp_path / 'nowhere'}): ShardSource: cannot read the shard manifest" in text
    assert "data.pretrain_shards['howto']" in text and "holds RetrievalDataset samples" in text
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_pretrain_shards_config_is_validated():
    with pytest.raises(ValueError, match=r"DataConfig.pretrain_shards=\{'a': 3\}: expected None or a dict"):
        DataConfig(pretrain_shards={"a": 3})
    with pytest.raises(ValueError, match=r"expected the same names as pretrain_datasets \['b'\]"):
        DataConfig(pretrain_shards={"a": "x"}, pretrain_datasets={"b": 1.0})
    with pytest.raises(ValueError, match="DataConfig.shard_streams=0: expected an integer >= 1"):
        DataConfig(shard_streams=0)
    ok = DataConfig(pretrain_shards={"a": {"location": "pipe:cat x/shards.json", "url": "pipe:cat x/{name}"}})
    assert ok.pretrain_shards["a"]["url"] == "pipe:cat x/{name}"
