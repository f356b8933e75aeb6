"""ResNet backbones against the fixtures' saved stage outputs (bit-for-bit expected in practice)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from knet.errors import KnetError
from knet.models.backbones import ResNet, resnet, resnet_v1c


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a.astype(np.float64) - b).max()) <= 1e-4 * float(np.abs(a).max()) + 1e-5


def _backbone_sd(path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}


@pytest.mark.parametrize(
    "name, build",
    [
        ("knet_s3_upernet_r50_ade20k_tiny", lambda: resnet_v1c(stem_channels=8, base_channels=8)),
        (
            "knet_s3_fcn_r50-d8_ade20k_tiny",
            lambda: resnet_v1c(stem_channels=8, base_channels=8, dilated=True),
        ),
        ("knet_s3_r50_fpn_coco_instance_tiny", lambda: resnet(base_channels=8)),
    ],
)
def test_resnet_matches_fixture(fixtures_dir, name, build):
    model = build()
    model.load_state_dict(_backbone_sd(fixtures_dir / f"{name}.pth"), strict=True)
    model.eval()
    x = torch.from_numpy(np.load(fixtures_dir / f"{name}_input.npy"))
    ref = np.load(fixtures_dir / f"{name}_outputs.npz")
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == 4
    for i, out in enumerate(outs):
        a = ref[f"backbone_c{i + 2}"]
        assert out.shape == a.shape
        assert _close(a, out.numpy()), f"backbone_c{i + 2}"


def test_resnet_shapes_odd_size_and_noncontiguous():
    model = resnet_v1c(stem_channels=8, base_channels=8, dilated=True).eval()
    x = torch.randn(1, 37, 45, 3).permute(0, 3, 1, 2)  # non-contiguous [1, 3, 37, 45]
    with torch.no_grad():
        outs = model(x)
        ref = model(x.contiguous())
    assert [o.shape[1] for o in outs] == [32, 64, 128, 256]
    assert outs[0].shape[-2:] == (10, 12)
    assert all(o.shape[-2:] == (5, 6) for o in outs[1:])
    for a, b in zip(outs, ref):  # different conv algorithms: equal to float32 rounding
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_resnet101_block_counts():
    model = ResNet(depth=101, stem_channels=8, base_channels=8)
    assert [len(getattr(model, f"layer{s}")) for s in range(1, 5)] == [3, 4, 23, 3]


def test_frozen_stages_and_norm_eval():
    model = resnet(base_channels=8, frozen_stages=1, norm_eval=True)
    model.train()
    assert not model.conv1.weight.requires_grad
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not model.layer3[0].bn1.training  # norm_eval keeps BN statistics frozen
    assert model.layer3[0].conv1.training
    v1c = resnet_v1c(stem_channels=8, base_channels=8, frozen_stages=0)
    v1c.train()
    assert not any(p.requires_grad for p in v1c.stem.parameters())
    assert v1c.layer1[0].bn1.training


def test_contract_dilation():
    model = resnet_v1c(stem_channels=8, base_channels=8, dilated=True)
    assert model.layer3[0].conv2.dilation == (1, 1) and model.layer3[1].conv2.dilation == (2, 2)
    assert model.layer4[0].conv2.dilation == (2, 2) and model.layer4[2].conv2.dilation == (4, 4)
    assert model.layer3[0].conv2.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)


def test_bad_arguments_raise_knet_error():
    with pytest.raises(KnetError):
        ResNet(depth=34)
    with pytest.raises(KnetError):
        ResNet(depth=50, with_dcn=True)


@pytest.mark.parametrize("build", [lambda: resnet(base_channels=8), lambda: resnet_v1c(stem_channels=8, base_channels=8, dilated=True)])
def test_inference_path_is_bit_identical(build):
    """Autograd off, the BatchNorms / residual adds / ReLUs write into the conv outputs: same bits."""
    torch.manual_seed(0)
    net = build().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics and affine parameters
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_()
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 70, 94)
    with torch.enable_grad():
        ref = [o.detach() for o in net(x)]
    with torch.inference_mode():
        outs = net(x)
        folded = net.folded_copy()(x)  # BatchNorms replaced by nn.Identity: still runs
    for a, b, c in zip(ref, outs, folded):
        assert torch.equal(a, b)
        assert (c - a).abs().max() <= 1e-4 * a.abs().max()  # the fold only rounds differently
