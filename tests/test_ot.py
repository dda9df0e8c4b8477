"""IPOT against POT's exact and entropic solvers; masks; marginals."""

import ot
import pytest
import torch

from allinone_lab.ot import cosine_cost, ipot, transport_plan, wasserstein


def problem(batch=3, n=6, m=9, dim=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return cosine_cost(torch.randn(batch, n, dim, generator=gen), torch.randn(batch, m, dim, generator=gen))


def test_ipot_plans_have_the_right_marginals():
    cost = problem()
    plan = ipot(cost, iters=200)
    torch.testing.assert_close(plan.sum(2), torch.full((3, 6), 1 / 6), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(plan.sum(1), torch.full((3, 9), 1 / 9), atol=1e-5, rtol=1e-4)
    assert plan.dtype == torch.float32


def test_ipot_tends_to_the_exact_plan_as_the_step_shrinks():
    cost = problem()
    exact = wasserstein(cost, transport_plan(cost, solver="emd"))
    # IPOT converges to the exact optimum (unlike Sinkhorn, whose entropic bias stays).
    gaps = [(wasserstein(cost, ipot(cost, beta=beta, iters=2000)) - exact).abs().max() for beta in (1.0, 0.1)]
    assert gaps[1] < gaps[0] + 1e-7 and gaps[1] < 1e-4
    emd_value = ot.emd2(torch.full((6,), 1 / 6).double().numpy(), torch.full((9,), 1 / 9).double().numpy(),
                        cost[0].double().numpy())
    assert exact[0].item() == pytest.approx(emd_value, abs=1e-6)


def test_one_ipot_step_with_converged_inner_loop_is_pots_sinkhorn_log():
    # From the uniform plan a b^T, one proximal step solves Sinkhorn with reg = beta.
    cost = problem(batch=2)
    ours = ipot(cost, beta=0.1, iters=1, inner=3000)
    pot = transport_plan(cost, solver="sinkhorn", reg=0.1, iters=10000)
    torch.testing.assert_close(ours, pot, atol=1e-6, rtol=1e-4)


def test_ipot_reaches_the_exact_cost_with_padding_masked():
    cost = problem(batch=2, n=5, m=7)
    x_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 1, 1, 1]], dtype=torch.bool)
    plan = ipot(cost, x_mask, y_mask, beta=0.05, iters=3000)
    assert plan[0, 3:].abs().sum() == 0 and plan[0, :, 6].abs().sum() == 0 and plan[1, :, 2:4].abs().sum() == 0
    exact = transport_plan(cost, x_mask, y_mask, solver="emd")
    torch.testing.assert_close(wasserstein(cost, plan), wasserstein(cost, exact), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(plan.sum(2)[0, :3], torch.full((3,), 1 / 3), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="solver"):
        transport_plan(cost, solver="greedy")


def textbook_ipot(cost, x_mask, y_mask, beta, iters, inner):
    """IPOT written as the recursion reads, every scaling masked explicitly."""
    a = x_mask.float() / x_mask.float().sum(1, keepdim=True).clamp(min=1)
    b = y_mask.float() / y_mask.float().sum(1, keepdim=True).clamp(min=1)
    valid = x_mask[:, :, None] & y_mask[:, None, :]
    kernel = torch.exp(-cost / beta) * valid
    plan = valid.float() / valid.float().sum(dim=(1, 2), keepdim=True).clamp(min=1)
    delta, sigma = a.clone(), b.clone()
    for _ in range(iters):
        q = kernel * plan
        for _ in range(inner):
            delta = a / (q @ sigma[:, :, None]).squeeze(2).clamp(min=1e-30) * x_mask
            sigma = b / (q.transpose(1, 2) @ delta[:, :, None]).squeeze(2).clamp(min=1e-30) * y_mask
        plan = delta[:, :, None] * q * sigma[:, None, :]
    return plan


@pytest.mark.parametrize("beta, iters, inner", [(0.5, 50, 1), (0.1, 7, 3), (0.5, 0, 1)])
def test_ipot_is_the_masked_recursion_bit_for_bit(beta, iters, inner):
    # The solver keeps its scalings as columns and skips the masking inside the loop (a padded position's
    # marginal is 0, so its scaling is 0 exactly): the plans must be the explicit recursion's, to the bit,
    # with padding, a row without any real word, and full masks.
    gen = torch.Generator().manual_seed(1)
    cost = torch.rand(6, 9, 17, generator=gen) * 2
    x_mask, y_mask = torch.rand(6, 9, generator=gen) < 0.7, torch.rand(6, 17, generator=gen) < 0.9
    x_mask[0] = False
    for xm, ym in ((x_mask, y_mask), (torch.ones_like(x_mask), torch.ones_like(y_mask))):
        ours = ipot(cost, xm, ym, beta=beta, iters=iters, inner=inner)
        assert torch.equal(ours, textbook_ipot(cost, xm, ym, beta, iters, inner))
    assert ours.shape == (6, 9, 17) and torch.isfinite(ours).all()


def test_alignment_loss_uses_real_words_of_matched_pairs_only():
    from allinone_lab.model import AllInOne, ModelConfig
    from allinone_lab.train.objectives import Pretraining, word_patch_alignment

    torch.manual_seed(0)
    model = AllInOne(ModelConfig(variant="tiny", width=32, heads=2, depth=1, image_size=32, max_text_len=8,
                                 drop_path_rate=0.0)).eval()
    ids = torch.tensor([[101, 2417, 4418, 102, 0, 0, 0, 0], [101, 2630, 3196, 5829, 2157, 102, 0, 0]])
    mask = (ids != 0).long()
    video = torch.randn(2, 3, 3, 32, 32)
    batch = {"video": video, "input_ids": ids, "attention_mask": mask, "vtm_label": torch.tensor([1, 0])}
    loss, metrics = Pretraining(model, {"ot": 1.0})(batch)
    joint = model(video, ids, mask)
    words = joint.text_tokens[0, 1:3][None]  # item 0 only (item 1 is a negative); no [CLS], [SEP], padding
    cost = cosine_cost(words, joint.video_tokens[0, 1:][None])
    torch.testing.assert_close(loss, wasserstein(cost, ipot(cost)).mean(), atol=1e-5, rtol=1e-5)
    assert metrics["ot_loss"] == loss.detach()
    none_matched = word_patch_alignment(joint, ids, mask, torch.tensor([0, 0]), prefix=1)
    assert none_matched == 0
