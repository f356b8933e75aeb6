"""Swin backbone: key layout, MMSegmentation index conventions, shapes on odd sizes."""

from __future__ import annotations

import torch

from knet.models.backbones.swin import (
    PatchMerging,
    SwinTransformer,
    WindowMSA,
    relative_position_index,
    swin_tiny,
)


def _mmseg_relative_position_index(ws: int) -> torch.Tensor:
    # MMSegmentation WindowMSA: double_step_seq(2*ws-1, ws, 1, ws), + transpose, flip(1)
    seq1 = torch.arange(0, (2 * ws - 1) * ws, 2 * ws - 1)
    seq2 = torch.arange(0, ws, 1)
    coords = (seq1[:, None] + seq2[None, :]).reshape(1, -1)
    return (coords + coords.T).flip(1)


def test_relative_position_index_matches_mmseg():
    for ws in (2, 3, 7):
        assert torch.equal(relative_position_index(ws), _mmseg_relative_position_index(ws))


def test_patch_merging_unfold_order():
    merge = PatchMerging(in_channels=2, out_channels=3)
    with torch.no_grad():
        merge.norm.weight.fill_(1.0)
        merge.norm.bias.zero_()
    x = torch.randn(1, 4 * 4, 2)  # H = W = 4, C = 2
    out, hw = merge(x, (4, 4))
    assert hw == (2, 2)
    grid = x.reshape(1, 4, 4, 2)
    # channel-major: index c * 4 + dy * 2 + dx
    first = torch.stack([grid[0, dy, dx, c] for c in range(2) for dy in range(2) for dx in range(2)])
    expected = merge.reduction(torch.nn.functional.layer_norm(first, (8,)))
    torch.testing.assert_close(out[0, 0], expected)


def test_window_attention_single_window_equals_dense_attention():
    torch.manual_seed(0)
    ws, c, heads = 3, 8, 2
    attn = WindowMSA(channels=c, num_heads=heads, window_size=ws)
    x = torch.randn(2, ws * ws, c)
    q, k, v = attn.qkv(x).reshape(2, ws * ws, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    # dense reference with an explicit double loop for the relative position bias
    bias = torch.empty(heads, ws * ws, ws * ws)
    for i in range(ws * ws):
        for j in range(ws * ws):
            dy = i // ws - j // ws + ws - 1
            dx = i % ws - j % ws + ws - 1
            bias[:, i, j] = attn.relative_position_bias_table[dy * (2 * ws - 1) + dx]
    scores = (q @ k.transpose(-2, -1)) / (c // heads) ** 0.5 + bias
    ref = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, ws * ws, c))
    torch.testing.assert_close(attn(x, None), ref)


def test_swin_key_layout_matches_published_list(fixtures_dir):
    lines = (fixtures_dir / "mmseg_knet_swin_t_upernet_keys.txt").read_text().splitlines()[1:]
    expected = {}
    for line in lines:
        name, shape, _ = line.split("\t")
        if name.startswith("backbone.") and not name.endswith("relative_position_index"):
            expected[name[len("backbone."):]] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    with torch.device("meta"):
        model = swin_tiny()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected


def test_small_swin_forward_odd_size_and_noncontiguous():
    torch.manual_seed(0)
    model = SwinTransformer(
        embed_channels=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7
    ).eval()
    x = torch.randn(1, 61, 83, 3).permute(0, 3, 1, 2)  # non-contiguous, not multiples of 4 or 7
    with torch.no_grad():
        outs = model(x)
        ref = model(x.contiguous())
    assert [tuple(o.shape) for o in outs] == [
        (1, 16, 16, 21),
        (1, 32, 8, 11),
        (1, 64, 4, 6),
        (1, 128, 2, 3),
    ]
    assert all(torch.isfinite(o).all() for o in outs)
    for a, b in zip(outs, ref):
        torch.testing.assert_close(a, b)
    # translation check of the shifted window: a batch of two equal images gives equal outputs
    with torch.no_grad():
        two = model(torch.cat([x, x]))
    for a, b in zip(outs, two):
        torch.testing.assert_close(b[1:], a, rtol=1e-5, atol=1e-5)


def test_swin_train_mode_drop_path_runs():
    model = SwinTransformer(embed_channels=8, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.5)
    model.train()
    outs = model(torch.randn(2, 3, 32, 32))
    sum(o.sum() for o in outs).backward()
    assert model.patch_embed.projection.weight.grad is not None


def test_shifted_window_mask_isolates_regions():
    """SW-MSA on a 14x14 map (ws 7, shift 3): a token only sees its own rolled window *and* region.

    Original (0, 0) and (13, 13) share a rolled window across the wrap-around but belong to
    different regions (masked with -100); (1, 1) is in the same region; (4, 4) is in another window.
    """
    from knet.models.backbones.swin import ShiftWindowMSA

    torch.manual_seed(0)
    attn = ShiftWindowMSA(channels=8, num_heads=2, window_size=7, shift=True).eval()
    x = torch.randn(1, 14 * 14, 8)

    def out_at_origin(pos: tuple[int, int] | None) -> torch.Tensor:
        y = x.clone()
        if pos is not None:
            y[0, pos[0] * 14 + pos[1]] += 10.0
        with torch.no_grad():
            return attn(y, (14, 14))[0, 0]

    base = out_at_origin(None)
    assert torch.allclose(out_at_origin((13, 13)), base, atol=1e-5)  # masked: other region
    assert torch.allclose(out_at_origin((4, 4)), base, atol=1e-6)  # other window
    assert not torch.allclose(out_at_origin((1, 1)), base, atol=1e-3)  # same region and window
