"""Retrieval metrics with ties and several captions per video, accuracies, the retrieval index."""

import pytest
import torch

from allinone_lab.eval import EmbeddingIndex, accuracy, ranks, retrieval_metrics, topk_accuracy


def test_perfect_and_reversed_rankings():
    sim = torch.eye(4)
    m = retrieval_metrics(sim, torch.arange(4))
    assert m["t2v_R@1"] == 100.0 and m["v2t_R@1"] == 100.0 and m["t2v_MdR"] == 1.0
    anti = -torch.eye(4)
    m = retrieval_metrics(anti, torch.arange(4))
    assert m["t2v_R@1"] == 0.0 and m["t2v_MnR"] == 4.0


def test_tied_scores_never_give_a_collapsed_model_a_lucky_rank():
    # Every text and video embedded to the same vector: all scores tie.
    sim = torch.ones(5, 5)
    pessimistic = retrieval_metrics(sim, torch.arange(5))
    assert pessimistic["t2v_R@1"] == 0.0 and pessimistic["t2v_MnR"] == 5.0
    # The argsort recipe miscounts: item 0 sits first among equals, so query 0 looks right.
    argsort_rank = (sim.argsort(dim=1, descending=True) == torch.arange(5)[:, None]).float().argmax(dim=1) + 1
    assert (argsort_rank == 1).any()
    assert retrieval_metrics(sim, torch.arange(5), ties="optimistic")["t2v_R@1"] == 100.0
    assert retrieval_metrics(sim, torch.arange(5), ties="mean")["t2v_MnR"] == 3.0


def test_duplicate_embeddings_share_the_tie():
    # Videos 1 and 2 are identical; text 1 belongs to video 1.
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    sim = text @ video.t()
    r = ranks(sim, torch.nn.functional.one_hot(torch.tensor([0, 1]), 3).bool())
    assert r.tolist() == [1.0, 2.0]


def test_several_captions_per_video():
    # Texts 0 and 1 describe video 0; text 2 video 1. Video 0's best caption is text 1.
    sim = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    m = retrieval_metrics(sim, torch.tensor([0, 0, 1]))
    assert m["t2v_R@1"] == pytest.approx(200 / 3)
    # Video 0's best caption (text 1, 0.8) beats text 2; video 1's caption (0.7) is beaten by text 0 (0.9).
    assert m["v2t_R@1"] == 50.0 and m["v2t_MnR"] == 1.5
    with pytest.raises(ValueError, match="ties"):
        ranks(sim, sim > 0.5, ties="random")


def test_accuracy_counts_out_of_vocabulary_answers_as_wrong():
    assert accuracy(torch.tensor([2, 2, 1]), torch.tensor([2, -1, 1])) == pytest.approx(200 / 3)
    assert topk_accuracy(torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.01, 0.09]]), torch.tensor([2, 1]), ks=(1, 2)) == {
        "top1": 0.0, "top2": 50.0}


def test_index_returns_exact_top_k_and_round_trips(tmp_path):
    gen = torch.Generator().manual_seed(0)
    stored = torch.nn.functional.normalize(torch.randn(1000, 16, generator=gen), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(7, 16, generator=gen), dim=-1)
    index = EmbeddingIndex(stored, ids=torch.arange(1000) + 5000)
    scores, ids = index.search(queries, k=5, chunk=64)
    brute = (queries @ stored.t()).topk(5, dim=1)
    torch.testing.assert_close(scores, brute.values)
    assert torch.equal(ids, brute.indices + 5000)
    index.save(tmp_path / "index.safetensors")
    again = EmbeddingIndex.load(tmp_path / "index.safetensors")
    assert torch.equal(again.search(queries, k=5)[1], ids)
    with pytest.raises(FileNotFoundError, match="index file"):
        EmbeddingIndex.load(tmp_path / "missing.safetensors")
