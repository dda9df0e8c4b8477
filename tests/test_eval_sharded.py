"""Retrieval features computed across two CPU processes (gloo) equal the single-process evaluation."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from allinone_lab.data import collate
from allinone_lab.eval import encode_texts, encode_videos, evaluate_retrieval_sharded, retrieval_metrics
from allinone_lab.model import AllInOne, ModelConfig

NUM_VIDEOS, NUM_TEXTS = 5, 7  # neither divides evenly by 2 processes; one share is shorter


class Items(Dataset):
    """Deterministic videos ``(S, C, H, W)`` or texts (``input_ids``, ``attention_mask``)."""

    def __init__(self, kind: str, count: int) -> None:
        self.kind, self.count = kind, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(100 + index)
        if self.kind == "video":
            return {"video": torch.randn(3, 3, 32, 32, generator=gen)}
        ids = torch.randint(5, 50, (8,), generator=gen)
        mask = torch.ones(8, dtype=torch.long)
        mask[5 + index % 3 :] = 0
        return {"input_ids": ids, "attention_mask": mask}


def make_model() -> AllInOne:
    torch.manual_seed(0)
    model = AllInOne(ModelConfig(variant="tiny", width=32, heads=2, depth=2, image_size=32, max_text_len=8,
                                 vocab_size=50, drop_path_rate=0.0, vtc_dim=16))
    return model.eval()


TEXT_TO_VIDEO = torch.tensor([0, 1, 2, 3, 4, 0, 2])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    seen: list[int] = []

    def counting_encode(model, batches):
        out = encode_videos(model, batches)
        seen.append(len(out))
        return out

    from allinone_lab.eval import encode_sharded

    videos = encode_sharded(counting_encode, make_model(), Items("video", NUM_VIDEOS), 2, collate)
    metrics = evaluate_retrieval_sharded(make_model(), Items("video", NUM_VIDEOS), Items("text", NUM_TEXTS),
                                         TEXT_TO_VIDEO, collate, batch_size=2)
    torch.save({"videos": videos, "metrics": metrics, "encoded_here": sum(seen)},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_processes_share_the_encoding_and_agree_with_one(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    model = make_model()
    videos = encode_videos(model, [collate([Items("video", NUM_VIDEOS)[i] for i in range(NUM_VIDEOS)])])
    texts = encode_texts(model, [collate([Items("text", NUM_TEXTS)[i] for i in range(NUM_TEXTS)])])
    expected = retrieval_metrics(texts @ videos.t(), TEXT_TO_VIDEO)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["encoded_here"] for r in ranks] == [3, 2]  # each process encoded only its share
    for result in ranks:
        torch.testing.assert_close(result["videos"], videos, atol=1e-5, rtol=1e-4)
        assert result["metrics"].keys() == expected.keys()
        for key, value in expected.items():
            assert abs(result["metrics"][key] - value) < 1e-6, key


def test_without_a_process_group_everything_is_encoded_here():
    model = make_model()
    metrics = evaluate_retrieval_sharded(model, Items("video", NUM_VIDEOS), Items("text", NUM_TEXTS),
                                         TEXT_TO_VIDEO, collate, batch_size=3)
    videos = encode_videos(model, [collate([Items("video", NUM_VIDEOS)[i] for i in range(NUM_VIDEOS)])])
    texts = encode_texts(model, [collate([Items("text", NUM_TEXTS)[i] for i in range(NUM_TEXTS)])])
    assert metrics == retrieval_metrics(texts @ videos.t(), TEXT_TO_VIDEO)
