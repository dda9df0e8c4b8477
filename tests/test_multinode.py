"""Two nodes train as one process: two torchrun launches (``--nnodes=2 --nproc-per-node=1``) meeting through
the c10d rendezvous on localhost, gloo, the command line's pre-training of the smoke preset, against one
process that accumulates the same global batch."""

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from allinone_lab.train import load_checkpoint
from allinone_lab.train.presets import preset

STEPS = 6
SETTINGS = [f"train.max_steps={STEPS}", "train.batch_size=2", "train.global_batch_size=4",
            f"train.checkpoint_every={STEPS}", "train.log_every=1", "train.num_workers=0", "train.device=cpu",
            "model.dropout=0.1", "model.drop_path_rate=0.1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pretrain_command(run_dir: Path) -> list[str]:
    return ["-m", "allinone_lab.train", "pretrain", "--preset", "smoke", "--run-dir", str(run_dir),
            "--no-progress", "--set", *SETTINGS]


def environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    keys = [k for k in a if a[k].is_floating_point()]
    diff = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in keys)
    return (diff / sum(float(a[k].double().pow(2).sum()) for k in keys)) ** 0.5


@pytest.mark.slow
def test_two_nodes_train_like_one_process_with_accumulation(tmp_path):
    from allinone_lab.data.corpus import build_corpus

    build_corpus(preset("smoke").corpus)  # once, before the nodes would build it side by side
    endpoint, run_id = f"localhost:{free_port()}", uuid.uuid4().hex[:8]
    nodes = []
    for node in range(2):
        # the c10d rendezvous numbers the nodes in the order they join (--node-rank is for static rendezvous)
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                   "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                   f"--rdzv-id={run_id}", "--max-restarts=0", *pretrain_command(tmp_path / "nodes")]
        log = open(tmp_path / f"node{node}.log", "w")  # noqa: SIM115 - closed below
        nodes.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment()), log))
    one = subprocess.run([sys.executable, *pretrain_command(tmp_path / "one")], capture_output=True, text=True,
                         env=environment(), timeout=300)
    for node, log in nodes:
        try:
            node.wait(timeout=300)
        finally:
            if node.poll() is None:
                node.kill()
            log.close()
    logs = "\n".join((tmp_path / f"node{r}.log").read_text()[-2000:] for r in range(2))
    assert all(node.returncode == 0 for node, _ in nodes), logs
    assert one.returncode == 0, one.stderr[-3000:]

    one_dir, nodes_dir = tmp_path / "one" / "pretrain", tmp_path / "nodes" / "pretrain"
    assert json.loads((nodes_dir / "environment.json").read_text())["world_size"] == 2
    assert json.loads((one_dir / "environment.json").read_text())["world_size"] == 1
    difference = relative_difference(load_checkpoint(one_dir / "checkpoints" / "last.pt")["model"],
                                     load_checkpoint(nodes_dir / "checkpoints" / "last.pt")["model"])
    assert difference <= 1e-5, f"relative weight difference {difference:.3g}"
    rows_one, rows_nodes = metrics(one_dir), metrics(nodes_dir)
    assert [r["step"] for r in rows_one] == [r["step"] for r in rows_nodes] == list(range(1, STEPS + 1))
    for a, b in zip(rows_one, rows_nodes, strict=True):
        for key in ("loss", "mlm_loss", "vtm_loss"):
            assert abs(a[key] - b[key]) <= 1e-4, (a["step"], key, a[key], b[key])
