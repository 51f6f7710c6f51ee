"""The masked ConvNeXt V2 U-Net of chapter 4: the mask test (invalid pixels never leak, at every
resolution), shapes, the unmasked path, GRN, parameter counts, gradients, input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soilbook.errors import ParameterError
from soilbook.models.convnext_unet import (
    DEPARTURES,
    GRN,
    PRESETS,
    PUBLISHED_PARAMS,
    ConvNeXtUNet,
    PartialConv2d,
    SqueezeExcitation,
    parameter_count,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

CHANNELS = {"sar": 3, "optical": 6, "terrain": 2, "meteo": 5}
N, SIDE = 2, 64


def _net(channels: dict[str, int] = CHANNELS, seed: int = 0) -> ConvNeXtUNet:
    """A tiny network in eval mode whose parameters are all randomised (GRN γ, β ≠ 0, LayerNorm
    weights ≠ 1, SE gates away from 0.5), so every statistic takes part in the tests."""
    torch.manual_seed(seed)
    net = ConvNeXtUNet(channels, preset="tiny")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return net.eval()


def _blobs(gen: torch.Generator, n_blobs: int) -> torch.Tensor:
    """(SIDE, SIDE) bool: the union of random discs (radius 3–12 px), cloud-like."""
    yy, xx = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    out = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    for _ in range(n_blobs):
        cy, cx = torch.randint(0, SIDE, (2,), generator=gen).tolist()
        r = 3 + 9 * torch.rand((), generator=gen).item()
        out |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return out


def _inputs_and_masks(seed: int = 1) -> tuple[dict, dict]:
    """Random inputs and masks: optical has cloud blobs and isolated cloudy pixels, SAR isolated
    no-data pixels and a swath edge, terrain isolated voids, meteo a missing block; the top-left
    32 × 32 of sample 0 is invalid in every modality, so every encoder level has invalid cells."""
    gen = torch.Generator().manual_seed(seed)
    xs = {k: torch.randn(N, c, SIDE, SIDE, generator=gen) for k, c in CHANNELS.items()}
    invalid = {k: torch.zeros(N, SIDE, SIDE, dtype=torch.bool) for k in CHANNELS}
    for i in range(N):
        invalid["optical"][i] = _blobs(gen, 4) | (torch.rand(SIDE, SIDE, generator=gen) < 0.03)
        invalid["sar"][i] = torch.rand(SIDE, SIDE, generator=gen) < 0.02
        invalid["terrain"][i] = torch.rand(SIDE, SIDE, generator=gen) < 0.01
    invalid["sar"][1, :, :5] = True  # swath edge
    invalid["meteo"][1, 40:56, 8:24] = True
    for k in CHANNELS:
        invalid[k][0, :32, :32] = True
    masks = {k: (~v).float()[:, None] for k, v in invalid.items()}
    return xs, masks


def _scramble(xs: dict, masks: dict, which: str, nan: bool = False, seed: int = 7) -> dict:
    """The inputs with new values (huge random numbers, or NaN) at the invalid pixels of
    ``which`` ("all" = every modality)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k, x in xs.items():
        if which not in ("all", k):
            out[k] = x.clone()
            continue
        junk = (
            torch.full_like(x, float("nan")) if nan else 1e3 * torch.randn(x.shape, generator=gen)
        )
        out[k] = torch.where(masks[k] > 0, x, junk)
    return out


# -- the mask test ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", [*CHANNELS, "all"])
def test_masked_pixels_never_leak_at_any_resolution(which: str) -> None:
    """Changing input values at masked pixels changes nothing at valid positions, at 1/4, 1/8,
    1/16 and 1/32 of the encoder and in the final output (eval mode)."""
    net = _net()
    xs, masks = _inputs_and_masks()
    changed = _scramble(xs, masks, which)
    with torch.no_grad():
        feats, fmasks = net.encode(xs, masks)
        feats2, fmasks2 = net.encode(changed, masks)
        pred, valid = net(xs, masks)
        pred2, valid2 = net(changed, masks)
    assert len(feats) == 4
    for level, (f, f2, m, m2) in enumerate(zip(feats, feats2, fmasks, fmasks2, strict=True)):
        assert torch.equal(m, m2)
        assert 0 < m.sum() < m.numel(), f"level {level}: the mask must have valid and invalid cells"
        keep = (m > 0).expand_as(f)
        torch.testing.assert_close(f[keep], f2[keep], rtol=0, atol=1e-6)
        assert torch.all(f[~keep] == 0) and torch.all(f2[~keep] == 0)
    assert torch.equal(valid, valid2)
    ok = valid > 0
    assert 0 < ok.sum() < ok.numel()
    torch.testing.assert_close(pred[ok], pred2[ok], rtol=0, atol=1e-6)
    # not vacuous: changing one valid pixel does change the output
    probe = {k: v.clone() for k, v in xs.items()}
    name = "optical" if which == "all" else which
    y, x = torch.nonzero(masks[name][1, 0] > 0)[0].tolist()
    probe[name][1, :, y, x] += 5.0
    with torch.no_grad():
        pred3, _ = net(probe, masks)
    assert not torch.allclose(pred3[1], pred[1])


def test_nan_at_masked_pixels_is_harmless() -> None:
    net = _net()
    xs, masks = _inputs_and_masks()
    with torch.no_grad():
        pred, valid = net(xs, masks)
        pred_nan, _ = net(_scramble(xs, masks, "all", nan=True), masks)
    assert torch.isfinite(pred_nan).all()
    torch.testing.assert_close(pred_nan[valid > 0], pred[valid > 0], rtol=0, atol=1e-6)


def test_coarse_mask_rule_any_valid_in_window() -> None:
    """The 1/4 mask is "any modality valid in the 4 × 4 window", each coarser one "any valid in
    the 2 × 2 window"; the output mask is "any modality valid" at full resolution."""
    net = _net()
    xs, masks = _inputs_and_masks()
    anyvalid = torch.stack(list(masks.values())).amax(dim=0)
    with torch.no_grad():
        _, fmasks = net.encode(xs, masks)
        _, valid = net(xs, masks)
    torch.testing.assert_close(fmasks[0], F.max_pool2d(anyvalid, 4))
    for i in (1, 2, 3):
        torch.testing.assert_close(fmasks[i], F.max_pool2d(fmasks[i - 1], 2))
    torch.testing.assert_close(valid, anyvalid[:, 0])


def test_partial_conv_formula() -> None:
    """out = W·(x⊙m)·(window / Σm) + b where Σm > 0 (padding counts as valid), 0 elsewhere."""
    torch.manual_seed(0)
    conv = PartialConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 6, 6)
    m = torch.ones(1, 1, 6, 6)
    m[0, 0, 1:4, 1:4] = 0  # a 3 × 3 hole: its centre pixel's window has no valid pixel
    out, new = conv(x, m)
    padded_m = F.pad(m, (1, 1, 1, 1), value=1.0)  # the border is zero padding, counted valid
    count = F.unfold(padded_m, 3).sum(dim=1).reshape(1, 1, 6, 6)
    raw = F.conv2d(x * m, conv.weight, None, padding=1)
    expected = torch.where(count > 0, raw * 9 / count.clamp_min(1) + conv.bias[:, None, None], 0)
    torch.testing.assert_close(out, expected)
    assert new[0, 0, 2, 2] == 0 and new.sum() == 35  # only the hole's centre is invalid
    sub = PartialConv2d(2, 2, 3, padding=1, groups=2, submanifold=True)
    _, same = sub(x, m)
    assert torch.equal(same, m)  # submanifold: the mask does not grow
    with pytest.raises(ParameterError, match="submanifold"):
        PartialConv2d(2, 2, 3, stride=2, padding=1, submanifold=True)


# -- the unmasked path, GRN, SE ----------------------------------------------------------------------


def test_all_valid_masks_equal_the_unmasked_path() -> None:
    net = _net()
    xs, _ = _inputs_and_masks()
    ones = {k: torch.ones(N, 1, SIDE, SIDE) for k in CHANNELS}
    with torch.no_grad():
        f_masked, _ = net.encode(xs, ones)
        f_plain, m_plain = net.encode(xs)
        p_masked, v_masked = net(xs, ones)
        p_plain, v_plain = net(xs)
    for a, b in zip(f_masked, f_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert all(torch.all(m == 1) for m in m_plain)
    torch.testing.assert_close(p_masked, p_plain, rtol=1e-5, atol=1e-5)
    assert torch.all(v_masked == 1) and torch.all(v_plain == 1)


def test_grn_is_identity_at_init_and_uses_valid_positions() -> None:
    torch.manual_seed(0)
    grn = GRN(12)
    x = torch.randn(2, 8, 8, 12)
    mask = (torch.rand(2, 8, 8, 1) > 0.5).float()
    assert torch.equal(grn(x), x) and torch.equal(grn(x, mask), x)
    net = ConvNeXtUNet(CHANNELS, preset="tiny")
    for module in net.modules():
        if isinstance(module, GRN):
            assert torch.all(module.gamma == 0) and torch.all(module.beta == 0)
    with torch.no_grad():
        grn.gamma.fill_(1.0)
    junk = torch.where(mask > 0, x, 100.0)
    torch.testing.assert_close(grn(x, mask)[mask[..., 0] > 0], grn(junk, mask)[mask[..., 0] > 0])


def test_se_weights_are_recorded_per_modality() -> None:
    net = _net()
    xs, masks = _inputs_and_masks()
    with torch.no_grad():
        net(xs, masks)
    assert set(net.last_se_weights) == set(CHANNELS) == set(net.last_gates)
    for k in CHANNELS:
        w = net.last_se_weights[k]
        assert w.shape == (N, PRESETS["tiny"][1][0]) and torch.all((w > 0) & (w < 1))
        torch.testing.assert_close(net.last_gates[k], w.mean(dim=1))
        frac = net.last_valid_fraction[k]
        assert frac.shape == (N,) and torch.all((frac > 0) & (frac <= 1))
    se = SqueezeExcitation(40)
    assert se.fc1.out_features == 4  # max(40 // 16, 4)
    x = torch.randn(2, 40, 8, 8)
    m = (torch.rand(2, 1, 8, 8) > 0.5).float()
    junk = torch.where(m > 0, x, 100.0)
    torch.testing.assert_close(se(x, m), se(junk, m))  # pooled over valid positions only


# -- shapes, sizes, ablations, gradients, dtypes -------------------------------------------------------


def test_output_shape_and_sequence_inputs() -> None:
    net = _net()
    xs, masks = _inputs_and_masks()
    with torch.no_grad():
        pred, valid = net(xs, masks)
        pred_seq, _ = net(list(xs.values()), list(masks.values()))
    assert pred.shape == valid.shape == (N, SIDE, SIDE)
    assert set(valid.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(pred, pred_seq)
    feats, fmasks = net.encode(xs, masks)
    for i, (f, m) in enumerate(zip(feats, fmasks, strict=True)):
        side = SIDE // 2 ** (i + 2)
        assert f.shape == (N, PRESETS["tiny"][1][i], side, side) and m.shape == (N, 1, side, side)


def test_ablations_build_different_networks_with_the_same_code() -> None:
    sizes = []
    for names in (("sar",), ("sar", "optical", "terrain"), tuple(CHANNELS)):
        net = _net({k: CHANNELS[k] for k in names})
        xs, masks = _inputs_and_masks()
        with torch.no_grad():
            pred, _ = net({k: xs[k] for k in names}, {k: masks[k] for k in names})
        assert pred.shape == (N, SIDE, SIDE) and net.modalities == names
        sizes.append(sum(p.numel() for p in net.parameters()))
    assert sizes[0] < sizes[1] < sizes[2]


def test_encoder_parameter_counts_match_convnext_v2() -> None:
    """Atto ≈ 3.7 M with the ImageNet stem and classifier head. Tolerance ±0.05 M: the published
    figures are rounded to 0.1 M. The exact count is also checked against the block arithmetic
    (stem 16·3·C0 + C0 + 2·C0; block 8C² + 65C; downsampling 2C + 4·C·C' + C'; head 2C + 1001C
    + 1000) plus the SE gate of the one stem."""

    def convnext_v2(depths: tuple[int, ...], dims: tuple[int, ...]) -> int:
        c0 = dims[0]
        total = 48 * c0 + c0 + 2 * c0
        for i, (d, c) in enumerate(zip(depths, dims, strict=True)):
            if i:
                total += 2 * dims[i - 1] + 4 * dims[i - 1] * c + c
            total += d * (8 * c * c + 65 * c)
        return total + 2 * dims[-1] + 1000 * dims[-1] + 1000

    for name, published in PUBLISHED_PARAMS.items():
        count = parameter_count(name, num_classes=1000)
        assert abs(count - published) <= 0.05e6, (name, count)
        c0 = PRESETS[name][1][0]
        h = max(c0 // 16, 4)
        se = c0 * h + h + h * c0 + c0  # SE: Linear(C0 -> h), Linear(h -> C0)
        assert count == convnext_v2(*PRESETS[name]) + se
    assert parameter_count("atto", num_classes=1000) == 3_708_400 + 364
    assert parameter_count("tiny", channels=CHANNELS, part="network") > parameter_count(
        "tiny", channels=CHANNELS
    )


def test_backward_with_fully_masked_modality_and_sample() -> None:
    torch.manual_seed(0)
    net = ConvNeXtUNet(CHANNELS, preset="tiny", drop_path=0.1).train()
    xs, masks = _inputs_and_masks()
    masks["optical"][0] = 0.0  # sample 0: optical entirely cloudy
    masks = {k: m.clone() for k, m in masks.items()}
    for k in CHANNELS:
        masks[k][1] = 0.0  # sample 1: nothing valid anywhere
    masks["sar"][1, :, 32:, 32:] = 1.0
    pred, valid = net(xs, masks)
    loss = ((pred - 0.5) ** 2 * valid).sum() / valid.sum()
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_channels_last_and_bf16_autocast() -> None:
    net = _net()
    xs, masks = _inputs_and_masks()
    with torch.no_grad():
        ref, _ = net(xs, masks)
        cl = net.to(memory_format=torch.channels_last)
        xs_cl = {k: v.contiguous(memory_format=torch.channels_last) for k, v in xs.items()}
        ms_cl = {k: v.contiguous(memory_format=torch.channels_last) for k, v in masks.items()}
        pred_cl, _ = cl(xs_cl, ms_cl)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred_bf, valid_bf = cl(xs_cl, ms_cl)
    torch.testing.assert_close(pred_cl, ref, rtol=1e-4, atol=1e-4)
    assert pred_bf.shape == (N, SIDE, SIDE) and torch.isfinite(pred_bf.float()).all()
    torch.testing.assert_close(valid_bf.float(), torch.stack(list(masks.values())).amax(0)[:, 0])


# -- checks ------------------------------------------------------------------------------------------


def test_bad_sizes_and_inputs_raise_parameter_error() -> None:
    net = ConvNeXtUNet({"sar": 3}, preset="tiny")
    with pytest.raises(ParameterError, match="multiples of 32"):
        net({"sar": torch.zeros(1, 3, 48, 64)})
    with pytest.raises(ParameterError, match="missing"):
        net({"optical": torch.zeros(1, 3, 64, 64)})
    with pytest.raises(ParameterError, match="expected"):
        net({"sar": torch.zeros(1, 2, 64, 64)})
    with pytest.raises(ParameterError, match="masks"):
        net({"sar": torch.zeros(1, 3, 64, 64)}, {"sar": torch.ones(1, 3, 64, 64)})
    with pytest.raises(ParameterError, match="preset"):
        ConvNeXtUNet({"sar": 3}, preset="huge")
    with pytest.raises(ParameterError, match="both depths and dims"):
        ConvNeXtUNet({"sar": 3}, depths=(1, 1, 1, 1))
    with pytest.raises(ParameterError, match="four positive"):
        ConvNeXtUNet({"sar": 3}, depths=(1, 1, 1), dims=(8, 16, 32))
    with pytest.raises(ParameterError, match="channels"):
        ConvNeXtUNet({}, preset="tiny")
    explicit = ConvNeXtUNet({"sar": 3}, depths=(1, 1, 2, 1), dims=(8, 8, 16, 16))
    assert explicit.depths == (1, 1, 2, 1) and explicit.preset is None
    assert len(DEPARTURES) >= 5 and all(isinstance(s, str) for s in DEPARTURES)
