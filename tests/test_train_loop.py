"""The training loop: real loss weights, schedule, accumulation, exact resume, NaN stop, atomic writes."""

import json

import pytest
import torch
from torch.utils.data import Dataset

from allinone_lab.model import AllInOne, ModelConfig
from allinone_lab.train import (
    NonFiniteLossError,
    Pretraining,
    TrainConfig,
    atomic_save,
    build_optimizer,
    load_checkpoint,
    parameter_groups,
    train,
    vtc_loss,
    warmup_linear_schedule,
)


def small_model(seed: int = 0, drop_path_rate: float = 0.1) -> AllInOne:
    torch.manual_seed(seed)
    return AllInOne(ModelConfig(variant="tiny", width=32, heads=2, depth=2, image_size=32, max_text_len=8,
                                vocab_size=50, drop_path_rate=drop_path_rate))


class Pairs(Dataset):
    """Deterministic synthetic video-text items (a function of the index alone)."""

    def __init__(self, size: int = 24) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(index)
        ids = torch.randint(5, 50, (8,), generator=gen)
        ids[0] = 1
        mask = torch.ones(8, dtype=torch.long)
        mask[6:] = 0
        labels = torch.full((8,), -100)
        labels[2:4] = ids[2:4]
        mlm_ids = ids.clone()
        mlm_ids[2:4] = 3
        return {"video": torch.randn(3, 3, 32, 32, generator=gen), "input_ids": ids, "attention_mask": mask,
                "mlm_input_ids": mlm_ids, "mlm_labels": labels}


def config(**overrides) -> TrainConfig:
    base = dict(max_steps=6, batch_size=4, lr=1e-3, checkpoint_every=3, log_every=1, num_workers=0, seed=0,
                loss_weights={"vtm": 1.0, "mlm": 1.0, "vtc": 0.5})
    base.update(overrides)
    return TrainConfig(**base)


def test_loss_weights_scale_each_loss():
    batch = torch.utils.data.default_collate([Pairs()[i] for i in range(4)])
    batch["vtm_label"] = torch.tensor([1, 0, 1, 0])
    model = small_model().eval()
    full = Pretraining(model, {"vtm": 1.0, "mlm": 1.0, "vtc": 1.0})(batch)[1]
    half = Pretraining(model, {"vtm": 0.5, "mlm": 1.0, "vtc": 0.0})
    total, metrics = half(batch)
    torch.testing.assert_close(total, 0.5 * full["vtm_loss"] + full["mlm_loss"])
    assert "vtc_loss" not in metrics
    with pytest.raises(ValueError, match="itc"):
        Pretraining(model, {"itc": 1.0})


def test_vtc_loss_is_symmetric_infonce():
    text = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    video = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(20.0)
    logits = scale * text @ video.t()
    expected = (torch.nn.functional.cross_entropy(logits, torch.arange(5))
                + torch.nn.functional.cross_entropy(logits.t(), torch.arange(5))) / 2
    torch.testing.assert_close(vtc_loss(text, video, scale.log()), expected)


def test_schedule_warms_up_then_decays_to_zero_and_norms_do_not_decay():
    model = small_model()
    groups = parameter_groups(model, 0.01)
    no_decay = {id(p) for p in groups[1]["params"]}
    assert id(model.norm.weight) in no_decay and id(model.blocks[0].attn.qkv.bias) in no_decay
    assert id(model.blocks[0].attn.qkv.weight) not in no_decay
    opt = torch.optim.AdamW(groups, lr=1.0)
    sched = warmup_linear_schedule(opt, total_steps=100, warmup_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.5) and sched.get_last_lr()[0] == 0.0


def test_optimizer_is_fused_on_cpu_and_steps_as_the_per_tensor_adamw():
    fused_model, plain_model, initial = small_model(), small_model(), small_model().state_dict()
    fused = build_optimizer(fused_model, lr=1e-2, weight_decay=0.01)
    plain = torch.optim.AdamW(parameter_groups(plain_model, 0.01), lr=1e-2, betas=(0.9, 0.98), eps=1e-8)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    for step in range(3):
        for model in (fused_model, plain_model):
            torch.manual_seed(step)
            for param in model.parameters():
                param.grad = torch.randn_like(param)
        fused.step()
        plain.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters(), strict=True):
        assert not torch.equal(a, initial[name]), f"{name} did not move"
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=GPU)])
def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path, device):
    cfg = config(device=device)  # on CUDA the checkpoint, RNG states included, is read back onto the GPU
    straight = train(Pretraining(small_model(), cfg.loss_weights), Pairs(), cfg, tmp_path / "a", progress=False)
    first = train(Pretraining(small_model(), cfg.loss_weights), Pairs(), cfg, tmp_path / "b",
                  stop_after=4, progress=False)
    assert first.step == 4 and load_checkpoint(first.checkpoint)["step"] == 4
    # A fresh process would build a fresh model: the checkpoint must restore everything.
    resumed = train(Pretraining(small_model(seed=123), cfg.loss_weights), Pairs(), cfg, tmp_path / "b",
                    progress=False)
    assert resumed.step == 6
    a = load_checkpoint(straight.checkpoint)["model"]
    b = load_checkpoint(resumed.checkpoint)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "mlm_loss", "vtm_loss", "vtc_loss", "lr", "videos_per_s"} <= set(rows[-1])
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["max_steps"] == 6


def test_gradient_accumulation_matches_one_large_batch(tmp_path):
    weights = {"mlm": 1.0}  # deterministic: no in-batch negatives, no stochastic depth
    one = train(Pretraining(small_model(drop_path_rate=0.0), weights), Pairs(), config(max_steps=2, batch_size=8, loss_weights=weights),
                tmp_path / "one", progress=False)
    acc = train(Pretraining(small_model(drop_path_rate=0.0), weights), Pairs(),
                config(max_steps=2, batch_size=4, global_batch_size=8, loss_weights=weights), tmp_path / "acc",
                progress=False)
    a, b = load_checkpoint(one.checkpoint)["model"], load_checkpoint(acc.checkpoint)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)


class Exploding(Pairs):
    def __getitem__(self, index):
        item = super().__getitem__(index)
        if index == 13:
            item["video"] = item["video"] * float("nan")
        return item


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = config(max_steps=20, checkpoint_every=1, loss_weights={"vtm": 1.0, "mlm": 1.0})
    with pytest.raises(NonFiniteLossError, match=r"nan at step \d+"):
        train(Pretraining(small_model(), cfg.loss_weights), Exploding(), cfg, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] >= 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_checkpoint_writes_are_atomic(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_save({"step": 2, "payload": Boom()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(path)


def test_precision_resolution_and_bf16_autocast_runs(tmp_path):
    from allinone_lab.train.loop import resolve_precision

    assert resolve_precision(torch.device("cpu"), "auto") == "fp32"
    assert resolve_precision(torch.device("cpu"), "bf16") == "bf16"
    seen = []
    objective = Pretraining(small_model(drop_path_rate=0.0), {"mlm": 1.0})
    objective.model.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    result = train(objective, Pairs(), config(max_steps=2, precision="bf16", loss_weights={"mlm": 1.0}), tmp_path,
                   progress=False)
    assert result.step == 2 and seen and all(dtype == torch.bfloat16 for dtype in seen)
    state = load_checkpoint(result.checkpoint)
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())


class Poisoned(Pairs):
    """NaN videos for the given items."""

    def __init__(self, bad: set[int]) -> None:
        super().__init__()
        self.bad = bad

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if index in self.bad:
            item["video"] = item["video"] * float("nan")
        return item


def test_nan_in_an_early_micro_batch_is_caught_before_the_update(tmp_path):
    # Global batch 8 = two micro-batches of 4; poison the *first* micro-batch of step 3 (step 3 takes items
    # order[16:24] of the epoch; micro-batch j holds every second of them from j: ResumableSampler).
    order = torch.randperm(24, generator=torch.Generator().manual_seed(0)).tolist()
    cfg = config(max_steps=5, batch_size=4, global_batch_size=8, checkpoint_every=1,
                 loss_weights={"vtm": 1.0, "mlm": 1.0})
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        train(Pretraining(small_model(), cfg.loss_weights), Poisoned(set(order[16:24:2])), cfg, tmp_path,
              progress=False)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_loader_workers_are_chosen_for_the_device_when_not_set(monkeypatch):
    from allinone_lab.train.loop import GPU_LOADER_WORKERS, loader_workers

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert loader_workers(3, gpu) == 3 and loader_workers(0, cpu, threads=1) == 0  # a count that is set is kept
    assert loader_workers(None, cpu, threads=2) == 0  # both cores compute: the main process loads
    assert loader_workers(None, cpu, threads=1) == 1  # a core is left: one worker uses it
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert loader_workers(None, cpu) == 0  # torch's thread count by default
    assert loader_workers(None, gpu) == 1  # two cores: one feeds the GPU, one runs the loop
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert loader_workers(None, cpu, threads=16) == 0 and loader_workers(None, cpu, threads=8) == 1
    assert loader_workers(None, gpu) == GPU_LOADER_WORKERS == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 8 processes share the 16 CPUs: one worker each
    assert loader_workers(None, gpu) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert loader_workers(None, gpu, divides=6) == 3  # a stream's workers divide its streams per rank
    with pytest.raises(ValueError, match=r"TrainConfig.num_workers=-1: expected an integer >= 0, or None"):
        config(num_workers=-1)
