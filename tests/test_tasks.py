"""Fine-tuning objectives and evaluation routines on a small model."""

import pytest
import torch

from allinone_lab.eval import (
    cloze_confusion,
    encode_texts,
    encode_videos,
    evaluate_cloze,
    evaluate_multiple_choice,
    evaluate_open_ended_qa,
    evaluate_retrieval,
    extract_features,
    linear_probe,
    rerank_with_vtm,
    retrieval_metrics,
)
from allinone_lab.model import AllInOne, ModelConfig
from allinone_lab.train import MultipleChoice, OpenEndedQA, Retrieval


def model(**overrides) -> AllInOne:
    torch.manual_seed(0)
    cfg = dict(variant="tiny", width=32, heads=2, depth=2, image_size=32, max_text_len=8, vocab_size=50,
               drop_path_rate=0.0)
    cfg.update(overrides)
    return AllInOne(ModelConfig(**cfg)).eval()


def videos(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def texts(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, 50, (n, 8), generator=torch.Generator().manual_seed(seed))
    return ids, torch.ones_like(ids)


def test_choice_scores_equal_one_forward_per_candidate():
    m = model()
    video = videos(2)
    ids, mask = texts(2 * 4)
    scores = m.choice_scores(video, ids.view(2, 4, 8), mask.view(2, 4, 8))
    for b in range(2):
        for k in range(4):
            out = m(video[b : b + 1], ids[b * 4 + k : b * 4 + k + 1], mask[:1])
            torch.testing.assert_close(scores[b, k], m.vtm_logits(out)[0, 1], atol=1e-5, rtol=1e-5)
    with_head = model(mc_head=True)
    assert with_head.choice_scores(video, ids.view(2, 4, 8), mask.view(2, 4, 8)).shape == (2, 4)


def test_multiple_choice_objective_and_evaluation_agree():
    m = model()
    ids, mask = texts(3 * 5)
    batch = {"video": videos(3), "input_ids": ids.view(3, 5, 8), "attention_mask": mask.view(3, 5, 8),
             "answer": torch.tensor([0, 4, 2])}
    loss, metrics = MultipleChoice(m)(batch)
    scores = m.choice_scores(batch["video"], batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(scores, batch["answer"]))
    assert evaluate_multiple_choice(m, [batch])["accuracy"] == pytest.approx(float(metrics["acc"]) * 100)
    # Among a subset of candidates (answer + two others), the best-scoring member of the subset wins.
    subset = torch.zeros(3, 5, dtype=torch.bool)
    subset[torch.arange(3), batch["answer"]] = True
    subset[:, [1, 3]] = True
    expected = (scores.detach().masked_fill(~subset, float("-inf")).argmax(1) == batch["answer"]).float().mean()
    result = evaluate_multiple_choice(m, [{**batch, "subset": subset}])
    assert result["subset_accuracy"] == pytest.approx(float(expected) * 100) and result["chance"] == 20.0


def test_open_ended_qa_counts_unknown_answers_wrong():
    m = model(num_answers=6)
    ids, mask = texts(4)
    batch = {"video": videos(4), "input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        predicted = m.qa_head(m(batch["video"], ids, mask).pooled).argmax(1)
    batch["answer_label"] = torch.stack([predicted[0], predicted[1], torch.tensor(-1), (predicted[3] + 1) % 6])
    assert evaluate_open_ended_qa(m, [batch])["accuracy"] == 50.0
    with pytest.raises(ValueError, match="num_answers"):
        OpenEndedQA(model())


def test_retrieval_objective_trains_both_losses_and_dual_stream_evaluation():
    m = model().train()
    ids, mask = texts(4)
    loss, metrics = Retrieval(m)({"video": videos(4), "input_ids": ids, "attention_mask": mask})
    loss.backward()
    assert {"vtc_loss", "vtm_loss"} <= set(metrics)
    assert m.vtc_head.text_proj.weight.grad.abs().sum() > 0 and m.vtm_head.fc.weight.grad.abs().sum() > 0
    m.eval()
    video_batches = [{"video": videos(4)[:2]}, {"video": videos(4)[2:]}]
    text_batches = [{"input_ids": ids, "attention_mask": mask}]
    sim = encode_texts(m, text_batches) @ encode_videos(m, video_batches).t()
    expected = retrieval_metrics(sim, torch.arange(4))
    assert evaluate_retrieval(m, video_batches, text_batches, torch.arange(4)) == expected


def test_vtm_reranking_orders_the_top_k_by_the_match_logit():
    m = model()
    ids, mask = texts(3)
    vids = videos(5)
    sim = torch.randn(3, 5, generator=torch.Generator().manual_seed(3))
    rescored = rerank_with_vtm(m, sim, vids, ids, mask, k=2)
    for t in range(3):
        top = sim[t].topk(2).indices
        with torch.no_grad():
            logits = m.vtm_logits(m(vids[top], ids[t].expand(2, -1), mask[t].expand(2, -1)))[:, 1]
        torch.testing.assert_close(rescored[t, top], logits)
        others = [i for i in range(5) if i not in top.tolist()]
        assert rescored[t, others].max() < rescored[t, top].min()


def test_cloze_accuracy_per_kind():
    m = model()
    ids, mask = texts(2)
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    with torch.no_grad():
        predicted = m.mlm_logits(m(videos(2), ids, mask)).argmax(-1)
    labels[0, 2] = predicted[0, 2]  # item 0 right, item 1 wrong
    labels[1, 2] = (predicted[1, 2] + 1) % 50
    result = evaluate_cloze(m, [{"video": videos(2), "input_ids": ids, "attention_mask": mask, "mlm_labels": labels,
                                 "kind": ["direction", "colour"]}])
    assert result == {"cloze_acc_all": 50.0, "cloze_acc_colour": 0.0, "cloze_acc_direction": 100.0}
    flagged = evaluate_cloze(m, [{"video": videos(2), "input_ids": ids, "attention_mask": mask, "mlm_labels": labels,
                                  "temporal": torch.tensor([True, False])}])
    assert flagged == {"cloze_acc_all": 50.0, "cloze_acc_static": 0.0, "cloze_acc_temporal": 100.0}


def test_cloze_confusion_counts_each_asked_position_by_true_and_predicted_id():
    m = model()
    ids, mask = texts(3)
    labels = torch.full_like(ids, -100)
    with torch.no_grad():
        predicted = m.mlm_logits(m(videos(3), ids, mask)).argmax(-1)
    labels[0, 2] = predicted[0, 2]  # right
    labels[1, 2] = predicted[0, 2]  # same true word, predicted as whatever item 1 gives
    labels[1, 3] = (predicted[1, 3] + 1) % 50  # wrong
    confusion = cloze_confusion(m, [{"video": videos(3), "input_ids": ids, "attention_mask": mask,
                                     "mlm_labels": labels}])
    expected: dict[int, dict[int, int]] = {}
    for row, col in ((0, 2), (1, 2), (1, 3)):
        true, guess = int(labels[row, col]), int(predicted[row, col])
        expected.setdefault(true, {}).setdefault(guess, 0)
        expected[true][guess] += 1
    assert confusion == expected
    assert sum(sum(r.values()) for r in confusion.values()) == 3  # item 2 asks nothing
    assert confusion[int(labels[1, 3])].get(int(labels[1, 3]), 0) == 0


def test_linear_probe_learns_separable_features():
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=gen) * 3
    labels = torch.arange(200) % 4
    feats = centers[labels] + torch.randn(200, 16, generator=gen)
    result = linear_probe(feats[:150], labels[:150], feats[150:], labels[150:], epochs=200)
    assert result["top1"] > 90 and set(result) == {"top1"}
    m = model()
    f, y = extract_features(m, [{"video": videos(3), "label": torch.tensor([0, 1, 2])}])
    assert f.shape == (3, 32) and y.tolist() == [0, 1, 2]
