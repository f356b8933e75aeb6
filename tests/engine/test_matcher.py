"""Mask Hungarian matching: cost terms against direct float64 formulas, assignment vs brute force."""

import itertools
import math

import numpy as np
import pytest
import torch

from knet.models.matcher import MaskHungarianMatcher, dice_cost, focal_cost, pixel_cost


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_cost_terms_direct_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    gt = (torch.rand(3, 4, 3, generator=g, dtype=torch.float64) > 0.5).double() * 0.9
    cls = torch.randn(5, 7, generator=g, dtype=torch.float64)
    labels = torch.tensor([6, 0, 6])
    d, p, f = dice_cost(logits, gt), pixel_cost(logits, gt), focal_cost(cls, labels)
    for n in range(5):
        pn = [_sig(v) for v in logits[n].flatten().tolist()]
        for m in range(3):
            t = gt[m].flatten().tolist()
            num = 2 * sum(a * b for a, b in zip(pn, t))
            den = sum(a * a for a in pn) + 1e-3 + sum(b * b for b in t) + 1e-3
            assert d[n, m].item() == pytest.approx(-num / den, rel=1e-10)
            acc = sum(a * b + (1 - a) * (1 - b) for a, b in zip(pn, t)) / len(t)
            assert p[n, m].item() == pytest.approx(-acc, rel=1e-10)
            q = _sig(cls[n, labels[m]].item())
            want = 0.25 * (1 - q) ** 2 * -math.log(q + 1e-12) - 0.75 * q**2 * -math.log(1 - q + 1e-12)
            assert f[n, m].item() == pytest.approx(want, rel=1e-9)


def _brute(cost: np.ndarray) -> float:
    n, m = cost.shape
    best = math.inf
    for perm in itertools.permutations(range(n), m):
        best = min(best, sum(cost[perm[j], j] for j in range(m)))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_assignment_is_optimal(seed):
    g = torch.Generator().manual_seed(seed)
    n, m = int(torch.randint(1, 7, (1,), generator=g)), int(torch.randint(1, 5, (1,), generator=g))
    logits = torch.randn(n, 6, 5, generator=g) * 3
    gt = (torch.rand(m, 6, 5, generator=g) > 0.6).float()
    cls = torch.randn(n, 4, generator=g) if seed % 2 else None
    labels = torch.randint(0, 4, (m,), generator=g)
    matcher = MaskHungarianMatcher()
    pi, gi = matcher(logits, gt, cls_logits=cls, gt_labels=labels)
    cost = matcher.cost(logits, gt, cls_logits=cls, gt_labels=labels).double().numpy()
    assert len(pi) == min(n, m) and len(set(pi.tolist())) == len(pi) and len(set(gi.tolist())) == len(gi)
    assert pi.tolist() == sorted(pi.tolist())
    got = float(sum(cost[a, b] for a, b in zip(pi.tolist(), gi.tolist())))
    if n >= m:
        assert got == pytest.approx(_brute(cost), abs=1e-5)
    else:
        assert got == pytest.approx(_brute(cost.T), abs=1e-5)


def test_empty_and_weights():
    matcher = MaskHungarianMatcher()
    pi, gi = matcher(torch.randn(4, 3, 3), torch.zeros(0, 3, 3))
    assert pi.numel() == 0 and gi.numel() == 0
    logits, gt = torch.randn(3, 4, 4), (torch.rand(2, 4, 4) > 0.5).float()
    cls, lab = torch.randn(3, 2), torch.tensor([1, 0])
    full = MaskHungarianMatcher().cost(logits, gt, cls_logits=cls, gt_labels=lab)
    want = 2 * focal_cost(cls, lab) + 4 * dice_cost(logits, gt) + pixel_cost(logits, gt)
    torch.testing.assert_close(full, want)
    torch.testing.assert_close(MaskHungarianMatcher().cost(logits, gt), 4 * dice_cost(logits, gt) + pixel_cost(logits, gt))


def test_perfect_predictions_match_their_targets():
    gt = torch.zeros(3, 8, 8)
    gt[0, :4], gt[1, 4:, :4], gt[2, 4:, 4:] = 1, 1, 1
    perm = [4, 0, 2]
    logits = torch.full((5, 8, 8), -8.0)
    for j, n in enumerate(perm):
        logits[n] = gt[j] * 16 - 8
    pi, gi = MaskHungarianMatcher()(logits, gt)
    assert dict(zip(gi.tolist(), pi.tolist())) == {0: 4, 1: 0, 2: 2}
