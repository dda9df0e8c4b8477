"""Data parallelism is one process with accumulation: two gloo processes at batch B train exactly like one
process at batch B with ``global_batch_size = 2 B`` (same seed), stochastic model and objective included."""

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from allinone_lab.model import AllInOne, ModelConfig
from allinone_lab.train import Pretraining, TrainConfig, load_checkpoint, train
from allinone_lab.train.presets import preset

STEPS = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NoisyPairs(Dataset):
    """Synthetic pairs whose masking is a function of (seed, epoch, index): 1 to 4 masked words per caption,
    so that micro-batches ask different numbers of words. No ``vtm_label``: the objective makes in-batch
    negatives. 22 items: not a whole number of global batches of 6."""

    def __init__(self, size: int = 22, seed: int = 0) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        fixed = torch.Generator().manual_seed(index)
        ids = torch.randint(5, 50, (8,), generator=fixed)
        ids[0] = 1
        mask = torch.ones(8, dtype=torch.long)
        mask[7:] = 0
        video = torch.randn(3, 3, 32, 32, generator=fixed)
        drawn = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + index)
        asked = torch.zeros(8, dtype=torch.bool)
        asked[1 + torch.randperm(6, generator=drawn)[: int(torch.randint(1, 5, (), generator=drawn))]] = True
        labels = torch.where(asked, ids, torch.full_like(ids, -100))
        return {"video": video, "input_ids": ids, "attention_mask": mask,
                "mlm_input_ids": torch.where(asked, torch.full_like(ids, 3), ids), "mlm_labels": labels}


def noisy_objective() -> Pretraining:
    """Every stochastic part of the model on: dropout, stochastic depth, random rolling, shuffled patches."""
    torch.manual_seed(0)
    model = AllInOne(ModelConfig(variant="tiny", width=32, heads=2, depth=2, image_size=32, max_text_len=8,
                                 vocab_size=50, drop_path_rate=0.2, dropout=0.1, roll_selection="random",
                                 shuffle_patches=True))
    return Pretraining(model, {"vtm": 1.0, "mlm": 1.0})


def pretraining_experiment(global_batch_size):
    """The smoke preset's pre-training (corpus pairs: masks and VTM partners drawn per item), with dropout
    and stochastic depth on."""
    return preset("smoke").override(**{
        "train.max_steps": STEPS, "train.batch_size": 2, "train.global_batch_size": global_batch_size,
        "train.checkpoint_every": STEPS, "train.log_every": 1, "train.num_workers": 0, "train.device": "cpu",
        "model.dropout": 0.1, "model.drop_path_rate": 0.1,
    })


def run_both(root: Path, accumulate: int | None) -> None:
    """Train both set-ups into ``root/noisy`` and ``root/pretrain``, accumulating ``accumulate`` micro-batches
    per step (None: one per process)."""
    from allinone_lab.train.jobs import pretrain

    cfg = TrainConfig(max_steps=STEPS, batch_size=3, global_batch_size=accumulate and 3 * accumulate, lr=1e-3,
                      log_every=1, checkpoint_every=5, num_workers=0, seed=3, device="cpu", warmup_ratio=0.2,
                      loss_weights={"vtm": 1.0, "mlm": 1.0})
    train(noisy_objective(), NoisyPairs(seed=3), cfg, root / "noisy", progress=False)
    pretrain(pretraining_experiment(accumulate and 2 * accumulate), root / "pretrain", progress=False)


def _worker(rank: int, world: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        run_both(Path(root), None)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    keys = [k for k in a if a[k].is_floating_point()]
    diff = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in keys)
    norm = sum(float(a[k].double().pow(2).sum()) for k in keys)
    return (diff / norm) ** 0.5


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_like_one_process_with_accumulation(tmp_path):
    from allinone_lab.data.corpus import build_corpus

    build_corpus(preset("smoke").corpus)  # once, before two processes would build it side by side
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    run_both(tmp_path / "one", 2)
    for name in ("noisy", "pretrain"):
        ddp, one = tmp_path / "ddp" / name, tmp_path / "one" / name
        difference = relative_difference(load_checkpoint(one / "checkpoints" / "last.pt")["model"],
                                         load_checkpoint(ddp / "checkpoints" / "last.pt")["model"])
        assert difference <= 1e-5, f"{name}: relative weight difference {difference:.3g}"
        rows_one, rows_ddp = metrics(one), metrics(ddp)
        assert [r["step"] for r in rows_one] == [r["step"] for r in rows_ddp] == list(range(1, STEPS + 1))
        for a, b in zip(rows_one, rows_ddp, strict=True):
            assert a["epoch"] == b["epoch"], (name, a, b)
            for key in ("loss", "mlm_loss", "mlm_acc", "vtm_loss", "vtm_acc"):
                assert abs(a[key] - b[key]) <= 1e-4, (name, a["step"], key, a[key], b[key])


def test_micro_batches_are_the_same_however_the_global_batch_is_split():
    from allinone_lab.train.sampler import ResumableSampler, micro_batch_index

    def micro_batches(sampler):
        items = list(sampler)
        return [items[i : i + sampler.batch_size] for i in range(0, len(items), sampler.batch_size)]

    for epoch in range(3):
        runs = {}
        for world, accumulation in ((1, 4), (2, 2), (4, 1)):
            by_index = {}
            for rank in range(world):
                sampler = ResumableSampler(23, 2, seed=5, rank=rank, world_size=world, accumulation=accumulation)
                sampler.set_position(epoch, 0)
                for n, batch in enumerate(micro_batches(sampler)):
                    step, micro = divmod(n, accumulation)
                    by_index[step, micro_batch_index(rank, micro, accumulation)] = batch
            runs[world] = by_index
        assert runs[1] == runs[2] == runs[4]
        assert sorted(runs[1]) == [(s, j) for s in range(23 // 8) for j in range(4)]  # the tail of 7 is dropped
        assert len({i for batch in runs[1].values() for i in batch}) == 16


def test_accumulating_run_with_stochastic_parts_resumes_exactly(tmp_path):
    cfg = TrainConfig(max_steps=7, batch_size=3, global_batch_size=6, lr=1e-3, log_every=1, checkpoint_every=3,
                      num_workers=0, seed=3, device="cpu", loss_weights={"vtm": 1.0, "mlm": 1.0})
    straight = train(noisy_objective(), NoisyPairs(seed=3), cfg, tmp_path / "a", progress=False)
    train(noisy_objective(), NoisyPairs(seed=3), cfg, tmp_path / "b", stop_after=4, progress=False)
    resumed = train(noisy_objective(), NoisyPairs(seed=3), cfg, tmp_path / "b", progress=False)
    a, b = load_checkpoint(straight.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def logged(run_dir):
        return [{k: v for k, v in row.items() if k != "videos_per_s"} for row in metrics(run_dir)]

    assert logged(tmp_path / "a") == logged(tmp_path / "b")
