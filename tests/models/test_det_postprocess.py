"""The chunked post-processing against a literal transcription of the original (all masks at once)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from knet.models import det_postprocess
from knet.ops import mask_resize
from knet.models.det_postprocess import instance_postprocess, panoptic_postprocess


@pytest.fixture(params=["one_chunk", "chunks_of_4"])
def chunking(request, monkeypatch):
    """Run each comparison with all masks in one chunk and with chunks of 4 masks."""
    if request.param == "chunks_of_4":
        monkeypatch.setattr(mask_resize, "CHUNK_FLOATS", 1)


def _literal_masks(mask_logits, batch_shape, img_shape, ori_shape):
    m = F.interpolate(mask_logits[None], scale_factor=2, mode="bilinear", align_corners=False)
    m = F.interpolate(m.sigmoid(), size=batch_shape, mode="bilinear", align_corners=False)
    m = m[:, :, : img_shape[0], : img_shape[1]]
    return F.interpolate(m, size=ori_shape, mode="bilinear", align_corners=False)[0]


def _literal_panoptic(cls, masks, shapes, nk, nt):
    probs = cls.sigmoid()
    thing_scores, thing_labels = probs[:nk, :nt].max(1)
    stuff_scores = probs[nk:, nt:].diag()
    stuff_labels = torch.arange(stuff_scores.numel()) + nt
    scores, labels = torch.cat([thing_scores, stuff_scores]), torch.cat([thing_labels, stuff_labels])
    total = _literal_masks(masks, **shapes)
    ids = (scores.view(-1, 1, 1) * total).argmax(0)
    pan = torch.full(ids.shape, -1, dtype=torch.long)
    segs = []
    for k in torch.argsort(-scores):
        if labels[k] < nt and scores[k] < 0.3:
            continue
        mask = ids == k
        area, orig = int(mask.sum()), int((total[k] >= 0.5).sum())
        if area > 0 and orig > 0:
            if area / orig < 0.6:
                continue
            pan[mask] = len(segs)
            segs.append((int(k), int(labels[k]), area))
    return pan, segs


SHAPES = [
    dict(batch_shape=(64, 96), img_shape=(61, 90), ori_shape=(97, 141)),  # upscale, odd sizes
    dict(batch_shape=(64, 96), img_shape=(64, 83), ori_shape=(33, 47)),  # downscale
]


@pytest.mark.parametrize("shapes", SHAPES)
def test_panoptic_matches_literal(shapes, chunking):
    g = torch.Generator().manual_seed(0)
    nk, nt, ns = 20, 8, 5
    cls = torch.randn(nk + ns, nt + ns, generator=g) * 2
    masks = torch.randn(nk + ns, 8, 12, generator=g) * 4
    result = panoptic_postprocess(cls, masks, num_kernels=nk, num_thing_classes=nt, **shapes)
    pan, segs = _literal_panoptic(cls, masks, shapes, nk, nt)
    assert [(s.kernel_index, s.label, s.area) for s in result.segments] == segs
    assert [s.id for s in result.segments] == list(range(1, len(segs) + 1))
    np.testing.assert_array_equal(result.segment_map, (pan + 1).numpy())
    assert result.segment_map.dtype == np.int32 and result.segment_map.shape == shapes["ori_shape"]


@pytest.mark.parametrize("shapes", SHAPES)
def test_instance_matches_literal(shapes, chunking):
    g = torch.Generator().manual_seed(1)
    cls = torch.randn(30, 7, generator=g)
    masks = torch.randn(30, 8, 12, generator=g) * 4
    result = instance_postprocess(cls, masks, max_per_img=50, **shapes)
    scores, idx = cls.sigmoid().flatten().topk(50)
    np.testing.assert_array_equal(result.scores, scores.numpy())
    np.testing.assert_array_equal(result.labels, (idx % 7).numpy())
    np.testing.assert_array_equal(result.kernel_index, (idx // 7).numpy())
    literal = _literal_masks(masks[idx // 7], **shapes) > 0.5
    np.testing.assert_array_equal(result.masks, literal.numpy())
    assert len(np.unique(result.kernel_index)) < 50  # kernels repeat: shared resize exercised


def test_fewer_pairs_than_max_per_img_and_non_contiguous():
    masks = torch.randn(3, 10, 6).transpose(1, 2)  # non-contiguous [3, 6, 10]
    result = instance_postprocess(torch.randn(3, 2), masks, batch_shape=(12, 20), img_shape=(12, 20), ori_shape=(12, 20))
    assert result.masks.shape == (6, 12, 20) and result.scores.shape == (6,)
    assert (np.diff(result.scores) <= 0).all()


def test_panoptic_all_void_when_no_thing_passes_and_no_stuff():
    cls = torch.full((4, 3), -5.0)  # every score ~0.0067 < 0.3
    result = panoptic_postprocess(cls, torch.randn(4, 5, 5), num_kernels=4, num_thing_classes=3,
                                  batch_shape=(10, 10), img_shape=(10, 10), ori_shape=(7, 9))
    assert result.segments == [] and (result.segment_map == 0).all()


@pytest.mark.parametrize("shapes", SHAPES)
def test_panoptic_with_pruned_kernels_matches_literal(shapes, chunking):
    """Blob-shaped masks: many kernels provably win no pixel and are skipped; same result."""
    g = torch.Generator().manual_seed(2)
    nk, nt, ns = 40, 8, 6
    n = nk + ns
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(12.0), indexing="ij")
    cy, cx, r = torch.rand(n, generator=g) * 8, torch.rand(n, generator=g) * 12, torch.rand(n, generator=g) * 3 + 1
    masks = (1 - ((yy - cy.view(-1, 1, 1)) ** 2 + (xx - cx.view(-1, 1, 1)) ** 2).sqrt() / r.view(-1, 1, 1)) * 8
    cls = torch.randn(n, nt + ns, generator=g) * 2
    scores, _ = det_postprocess.panoptic_scores(cls, num_kernels=nk, num_thing_classes=nt)
    winners = det_postprocess.possible_winners(det_postprocess.stride4_probs(masks), scores)
    assert 0 < int(winners.sum()) < n  # the pruning is exercised
    result = panoptic_postprocess(cls, masks, num_kernels=nk, num_thing_classes=nt, **shapes)
    pan, segs = _literal_panoptic(cls, masks, shapes, nk, nt)
    assert [(s.kernel_index, s.label, s.area) for s in result.segments] == segs
    np.testing.assert_array_equal(result.segment_map, (pan + 1).numpy())
