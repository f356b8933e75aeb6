"""Swin Transformer backbone (Liu et al., ICCV 2021) in the MMSegmentation / MMDetection layout.

    patch_embed (4x4 conv, stride 4, LN) -> 4 stages of [W-MSA / SW-MSA blocks] with patch
    merging between stages -> per-stage LayerNorm `norm{i}` -> [C2, C3, C4, C5] (strides 4..32).

Every detail that changes numbers follows MMSegmentation's implementation, whose checkpoints K-Net
uses: inputs whose size is not a multiple of the patch / window size are zero-padded at the
bottom-right ("corner" padding), the shifted-window attention mask uses -100, patch merging
concatenates the 2x2 neighbourhood in `nn.Unfold` order (channel-major: c * 4 + dy * 2 + dx),
and the relative position index equals MMSegmentation's `relative_position_index` buffer (that
buffer is deterministic, so it is rebuilt here and not stored in our state dicts).

Key names: patch_embed.{projection,norm}, stages.{s}.blocks.{b}.{norm1, attn.w_msa.{qkv, proj,
relative_position_bias_table}, norm2, ffn.layers.0.0, ffn.layers.1}, stages.{s}.downsample.{norm,
reduction}, norm{0..3}.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def relative_position_index(window_size: int) -> torch.Tensor:
    """[ws*ws, ws*ws] int64 index into the (2ws-1)^2 relative position bias table."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)  # [2, ws*ws]
    rel = coords[:, :, None] - coords[:, None, :]  # [2, N, N]
    rel = rel + (window_size - 1)
    return rel[0] * (2 * window_size - 1) + rel[1]


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at inference)."""

    def __init__(self, *, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep


class WindowMSA(nn.Module):
    """Multi-head self-attention inside each window, with the learned relative position bias."""

    def __init__(self, *, channels: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (channels // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer(
            "relative_position_index", relative_position_index(window_size), persistent=False
        )
        self.qkv = nn.Linear(channels, channels * 3)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: [B*nW, N, C] with N = ws*ws; mask: [nW, N, N] (0 / -100) or None
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B*nW, heads, N, d]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # [B*nW, heads, N, N]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.reshape(bw, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    # [B, H, W, C] -> [B*nW, ws*ws, C]
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    # [B*nW, ws*ws, C] -> [B, H, W, C]
    c = windows.shape[-1]
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def _shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """[nW, N, N] attention mask: 0 inside one region of the rolled map, -100 across regions."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    windows = _window_partition(img, ws).squeeze(-1)  # [nW, N]
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class ShiftWindowMSA(nn.Module):
    """(Shifted) window attention over a [B, H*W, C] token map, zero-padded to whole windows."""

    def __init__(self, *, channels: int, num_heads: int, window_size: int, shift: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.w_msa = WindowMSA(channels=channels, num_heads=num_heads, window_size=window_size)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        h, w = hw
        ws, shift = self.window_size, self.shift_size
        x = x.reshape(b, h, w, c)
        pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = x.shape[1:3]
        mask = None
        if shift > 0:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = _shift_mask(hp, wp, ws, shift, x.device)
        out = self.w_msa(_window_partition(x, ws), mask)  # [B*nW, ws*ws, C]
        out = _window_reverse(out, ws, hp, wp)  # [B, Hp, Wp, C]
        if shift > 0:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out[:, :h, :w, :].reshape(b, h * w, c)


class SwinFFN(nn.Module):
    """Linear -> GELU -> Linear (keys ffn.layers.0.0 / ffn.layers.1); residual added by the block."""

    def __init__(self, *, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(channels, hidden_channels), nn.GELU()),
            nn.Linear(hidden_channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SwinBlock(nn.Module):
    """x = x + DropPath(MSA(LN(x))); x = x + DropPath(FFN(LN(x)))."""

    def __init__(
        self,
        *,
        channels: int,
        num_heads: int,
        window_size: int,
        shift: bool,
        mlp_ratio: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = ShiftWindowMSA(
            channels=channels, num_heads=num_heads, window_size=window_size, shift=shift
        )
        self.norm2 = nn.LayerNorm(channels)
        self.ffn = SwinFFN(channels=channels, hidden_channels=int(channels * mlp_ratio))
        self.drop_path = DropPath(drop_prob=drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.ffn(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> LN -> Linear(4C -> 2C, no bias); odd sizes padded bottom-right."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        b, _, c = x.shape
        h, w = hw
        x = x.reshape(b, h, w, c).permute(0, 3, 1, 2)  # [B, C, H, W]
        x = F.pad(x, (0, w % 2, 0, h % 2))
        x = F.unfold(x, kernel_size=2, stride=2)  # [B, 4C, H/2*W/2], channel-major order
        out_hw = ((h + 1) // 2, (w + 1) // 2)
        x = self.reduction(self.norm(x.transpose(1, 2)))
        return x, out_hw


class SwinStage(nn.Module):
    def __init__(
        self,
        *,
        channels: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        drop_paths: Sequence[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(
                channels=channels,
                num_heads=num_heads,
                window_size=window_size,
                shift=(i % 2 == 1),
                mlp_ratio=mlp_ratio,
                drop_path=drop_paths[i],
            )
            for i in range(depth)
        )
        self.downsample = (
            PatchMerging(in_channels=channels, out_channels=2 * channels) if downsample else None
        )

    def forward(self, x: torch.Tensor, hw: tuple[int, int]):
        for block in self.blocks:
            x = block(x, hw)
        if self.downsample is None:
            return x, hw, x, hw
        down, down_hw = self.downsample(x, hw)
        return down, down_hw, x, hw


class PatchEmbed(nn.Module):
    def __init__(self, *, in_channels: int, channels: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Conv2d(in_channels, channels, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.projection(x)  # [B, C, H/4, W/4]
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class SwinTransformer(nn.Module):
    """Swin backbone returning [C2, C3, C4, C5] with channels embed * (1, 2, 4, 8).

    Args (keyword-only): embed_channels (96 Swin-T, 192 Swin-L), depths ((2,2,6,2) / (2,2,18,2)),
    num_heads ((3,6,12,24) / (6,12,24,48)), window_size 7, mlp_ratio 4, drop_path_rate
    (stochastic depth, linearly increasing over all blocks), patch_size 4.
    """

    def __init__(
        self,
        *,
        embed_channels: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.3,
        patch_size: int = 4,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(
            in_channels=in_channels, channels=embed_channels, patch_size=patch_size
        )
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linspace(0, rate)
        self.stages = nn.ModuleList()
        self.out_channels: list[int] = []
        start = 0
        for s, depth in enumerate(depths):
            channels = embed_channels * 2**s
            self.stages.append(
                SwinStage(
                    channels=channels,
                    depth=depth,
                    num_heads=num_heads[s],
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    drop_paths=rates[start : start + depth],
                    downsample=s < len(depths) - 1,
                )
            )
            start += depth
            self.add_module(f"norm{s}", nn.LayerNorm(channels))
            self.out_channels.append(channels)
        for m in self.modules():  # MMSegmentation Swin init: trunc_normal(0.02) Linear, bias 0
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: [B, 3, H, W]
        tokens, hw = self.patch_embed(x)  # [B, H/4*W/4, C]
        outs = []
        for s, stage in enumerate(self.stages):
            tokens, hw_next, out, out_hw = stage(tokens, hw)
            out = getattr(self, f"norm{s}")(out)
            outs.append(out.reshape(-1, out_hw[0], out_hw[1], out.shape[-1]).permute(0, 3, 1, 2).contiguous())
            hw = hw_next
        return outs  # [C2, C3, C4, C5]


def swin_tiny(*, drop_path_rate: float = 0.3) -> SwinTransformer:
    return SwinTransformer(
        embed_channels=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=drop_path_rate
    )


def swin_large(*, drop_path_rate: float = 0.3) -> SwinTransformer:
    return SwinTransformer(
        embed_channels=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), drop_path_rate=drop_path_rate
    )
