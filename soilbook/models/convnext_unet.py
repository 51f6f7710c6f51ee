"""Chapter 4's network (Liu et al., Remote Sensing 18(1) 84): a masked ConvNeXt V2 U-Net with
per-modality stems and Squeeze-and-Excitation fusion, for dense surface soil moisture.

Pure :mod:`torch` modules — no data loading, no estimator (that is
:class:`soilbook.models.soil_moisture.SoilMoistureRegressor`). The paper publishes the backbone
(ConvNeXt V2), the submanifold sparse convolutions, SE fusion and U-Net skips, but no input
sizes, SE details or decoder; every choice made here is in :data:`DEPARTURES`.

Inputs and the contract
-----------------------
The network is built for named modalities and their channel counts, e.g.
``ConvNeXtUNet({"sar": 3, "optical": 6, "terrain": 2, "meteo": 5}, preset="atto")``; the
ablations (SAR only; SAR + optical + terrain; all) are the same code with other ``channels``.
``forward(inputs, masks)`` takes

* ``inputs``: a mapping name → (n, c, H, W) float tensor, or a sequence in the order of
  :attr:`ConvNeXtUNet.modalities`; H and W must be multiples of 32 (:data:`STRIDE`), else
  :class:`~soilbook.errors.ParameterError`;
* ``masks``: the same keys/order → (n, 1, H, W) validity masks (values > 0 are valid: 1 = valid
  pixel, 0 = cloud / no-data), or None for a modality (or for all) that is everywhere valid.
  Values at invalid pixels are never read (they may be anything, NaN included);

and returns ``(pred, valid)``: ``pred`` (n, H, W) the regression map (the standardised target),
``valid`` (n, H, W) float 0/1, 1 where at least one modality is valid. At pixels with
``valid == 0`` the prediction is an extrapolation from neighbouring valid pixels: ignore it
(the regressor writes NaN there). :meth:`ConvNeXtUNet.encode` returns the encoder's feature
maps and masks at 1/4, 1/8, 1/16 and 1/32 of the input resolution.

Masked ("sparse") convolution
-----------------------------
The paper uses submanifold sparse convolution (MinkowskiEngine in the official FCMAE code, which
is unmaintained since 2021 and masks whole 32-pixel patches). Here it is a dense **partial
convolution** (:class:`PartialConv2d`) on pixel-level masks:
``out = W·(x⊙m)·(window / Σm) + b`` where the window holds a valid pixel, 0 elsewhere, with
``Σm`` counting the valid pixels of the window (zero padding outside the image counts as valid
zeros, so an all-valid mask gives exactly the ordinary convolution). The mask at each resolution:
a strided convolution's output cell (stem 4 × 4 / 4, downsampling 2 × 2 / 2) is valid when any
input pixel of its window is; a depthwise 7 × 7 convolution inside a block is *submanifold* — its
output mask is its input mask, as in a submanifold sparse convolution. Every module sets its
output to 0 at invalid positions and GRN and SE statistics use valid positions only, so nothing
computed anywhere depends on the values of invalid input pixels
(``tests/test_convnext_unet.py`` checks it at every resolution and at the output).

Architecture
------------
1. *Stems and fusion* (:class:`SEFusionStem`): per modality a partial 4 × 4 / 4 convolution to
   ``dims[0]`` channels, LayerNorm, and an SE gate (:class:`SqueezeExcitation`: masked average
   pool → Linear(C → max(C // 16, 4)) → ReLU → Linear → sigmoid). The fused map is the **sum**
   of the SE-weighted modality maps; a modality contributes 0 where it is invalid, so the sum
   runs over the modalities valid at that position; the fused mask is "any modality valid".
   The SE weights of the last forward pass are kept per modality (``last_se_weights``, (n, C))
   with a scalar summary (``last_gates``, the mean channel weight, (n,)) for the notebook.
2. *Encoder* (:class:`ConvNeXtV2Encoder`): ConvNeXt V2 stages of :class:`ConvNeXtV2Block`
   (depthwise 7 × 7 partial conv → LayerNorm (eps 1e-6, channels-last) → Linear(C → 4C) → GELU →
   :class:`GRN` → Linear(4C → C) → DropPath + residual; no layer scale), LayerNorm + partial
   2 × 2 / 2 convolution between stages; sizes in :data:`PRESETS` (Atto … Nano as published,
   plus ``"tiny"`` for CPU tests and the quick profile).
3. *Decoder* (:class:`UNetDecoder`): from 1/32, three times bilinear ×2 upsampling, concatenation
   with the skip features and the skip level's mask, and two ordinary 3 × 3 convolutions
   (LayerNorm, GELU) to that level's width; at 1/4 a bilinear ×4 upsampling to full resolution,
   concatenation with the (masked, zero-filled) inputs and their masks, a 3 × 3 convolution
   (LayerNorm, GELU) and a 1 × 1 convolution to one channel.

timm
----
timm's ``convnextv2_atto`` … ``_nano`` are **not** used: timm is not installed on the CPU machine
the quick profile and CI run on, and it has no masking (its convolutions, GRN and stem read every
pixel). The unmasked path here (all masks None) is the plain ConvNeXt V2 computation — same block,
GRN, stem and downsampling, same parameter shapes — so a timm encoder could replace it where no
input is ever masked; with masks it could not.

GPU notes: no ``view`` on activations (channels-last tensors work throughout), the mask
arithmetic runs in float32 and is cast to the activations' dtype, so bfloat16 autocast works;
shape checks are on static shapes (``torch.compile``-friendly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soilbook.errors import ParameterError

__all__ = [
    "DEPARTURES",
    "GRN",
    "PRESETS",
    "PUBLISHED_PARAMS",
    "STRIDE",
    "ConvNeXtUNet",
    "ConvNeXtV2Block",
    "ConvNeXtV2Encoder",
    "DropPath",
    "LayerNorm2d",
    "PartialConv2d",
    "SEFusionStem",
    "SqueezeExcitation",
    "UNetDecoder",
    "parameter_count",
]

#: Encoder sizes: name -> (depths, dims) of the four stages. Atto … Nano are ConvNeXt V2's
#: published configurations; "tiny" is this book's CPU size (tests, quick profile).
PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tiny": ((1, 1, 1, 1), (8, 16, 32, 64)),
    "atto": ((2, 2, 6, 2), (40, 80, 160, 320)),
    "femto": ((2, 2, 6, 2), (48, 96, 192, 384)),
    "pico": ((2, 2, 6, 2), (64, 128, 256, 512)),
    "nano": ((2, 2, 8, 2), (80, 160, 320, 640)),
}
#: Published parameter counts of ConvNeXt V2 (ImageNet: 3-channel stem, 1000-class head),
#: rounded to 0.1 M as in the ConvNeXt V2 paper; :func:`parameter_count` reproduces them.
PUBLISHED_PARAMS: dict[str, float] = {"atto": 3.7e6, "femto": 5.2e6, "pico": 9.1e6, "nano": 15.6e6}
#: The input's height and width must be multiples of this (stem 4 × three 2× downsamplings).
STRIDE = 32
#: Defaults of the SE gate: reduction and smallest hidden width.
SE_REDUCTION = 16
SE_MIN_HIDDEN = 4
#: LayerNorm epsilon (ConvNeXt V2).
LN_EPS = 1e-6

#: What the paper does not publish and what this module chose, one sentence each.
DEPARTURES: tuple[str, ...] = (
    "Masked convolution: dense partial convolution (out = W(x*m)(window / sum m) + b, 0 where "
    "the window holds no valid pixel) on pixel-level masks instead of MinkowskiEngine "
    "submanifold sparse convolution (unmaintained, CUDA-only, and in the official FCMAE code "
    "used on 32-pixel patch masks only).",
    "Mask at coarser resolutions: a cell of a strided convolution (stem 4x4/4, downsampling "
    "2x2/2) is valid when any input pixel of its window is valid; the depthwise 7x7 convolution "
    "of a block is submanifold (its output mask is its input mask), so masks never grow inside a "
    "stage.",
    "Zero padding at the image border counts as valid zeros in the partial-convolution "
    "renormalisation, so an all-valid mask gives exactly the ordinary (timm / official) "
    "convolution; only in-image invalid pixels are renormalised away.",
    "GRN statistics (the L2 norm over H, W) on valid positions only, as the official dense "
    "emulation of sparse convolution does; every block zeroes its output at invalid positions.",
    "Per-modality stems (partial 4x4/4 conv -> LayerNorm) instead of ConvNeXt's single stem; the "
    "paper names SE fusion but not its form.",
    "SE per modality: masked average pool over the modality's valid positions -> Linear(C -> "
    "max(C // 16, 4)) -> ReLU -> Linear -> sigmoid, a channel weight in (0, 1) (Hu et al. 2018 "
    "with reduction 16; the minimum width 4 keeps narrow stems usable).",
    "Fusion rule: the fused 1/4 map is the sum over modalities of SE weight x stem features, and "
    "each modality's features are 0 where it is invalid, so the sum runs over the modalities "
    "valid at that position (a sum, not a mean: the first block's LayerNorm rescales it and an "
    "absent modality stays visible as a missing contribution); fused mask = any modality valid.",
    "Decoder (not published): U-Net with bilinear upsampling, concatenation of the skip features "
    "and the skip level's mask, two ordinary 3x3 conv + LayerNorm + GELU per level at that "
    "level's width; ordinary convolutions are safe because every encoder feature is 0 (a "
    "constant) at invalid positions.",
    "Full-resolution head: bilinear x4 upsampling of the 1/4 decoder map, concatenated with the "
    "zero-filled inputs and their masks (a full-resolution skip, so 10 m detail is not lost), "
    "3x3 conv + LayerNorm + GELU, 1x1 conv to one channel; no activation (a standardised "
    "regression target).",
    "Invalid output pixels (no modality valid) are flagged by the returned mask rather than "
    "predicted as missing; the estimator writes NaN there.",
    "Initialisation as ConvNeXt V2 (truncated normal, std 0.02, zero biases; GRN gamma = beta = "
    "0) for every convolution and linear layer, the decoder and SE included; stochastic depth "
    "rises linearly from 0 to drop_path over the blocks.",
)


# -- building blocks -------------------------------------------------------------------------------


def _valid(mask: Tensor | None, like: Tensor) -> Tensor | None:
    """A mask as 0/1 in ``like``'s dtype (values > 0 are valid), or None."""
    if mask is None:
        return None
    return (mask > 0).to(like.dtype)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (n, C, H, W) map (eps 1e-6), computed channels-last
    through ``permute`` (no ``view``; a channels-last input stays channels-last)."""

    def __init__(self, channels: int, eps: float = LN_EPS):
        super().__init__(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PartialConv2d(nn.Conv2d):
    """A 2-D convolution that reads only valid pixels (partial convolution, Liu et al. 2018).

    ``forward(x, mask)`` with ``x`` (n, C_in, H, W) and ``mask`` (n, 1, H, W) (values > 0 valid,
    one mask shared by all channels) returns ``(out, new_mask)``:
    ``out = W·(x⊙m)·(window / Σm) + b`` at output positions of ``new_mask``, 0 elsewhere, where
    ``window`` = kh·kw and ``Σm`` counts the valid pixels of the window, zero padding outside
    the image counting as valid (an all-valid mask gives the ordinary convolution exactly).
    ``new_mask`` (n, 1, H', W') float 0/1 is "any pixel of the window valid", or — with
    ``submanifold=True`` (stride 1, "same" padding only) — the input mask itself. Invalid
    pixels of ``x`` are replaced by 0 before the convolution, so their values (NaN included)
    never matter. With ``mask=None`` it is the ordinary convolution and returns ``(out, None)``.
    """

    def __init__(self, *args: object, submanifold: bool = False, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.dilation != (1, 1) or self.padding_mode != "zeros":
            raise ParameterError(
                "PartialConv2d supports dilation 1 and zero padding only; "
                f"got dilation={self.dilation}, padding_mode={self.padding_mode!r}."
            )
        if isinstance(self.padding, str):
            raise ParameterError("PartialConv2d needs integer padding, not a padding string.")
        if submanifold:
            kh, kw = self.kernel_size
            if self.stride != (1, 1) or self.padding != ((kh - 1) // 2, (kw - 1) // 2):
                raise ParameterError(
                    "submanifold=True needs stride 1 and 'same' padding (odd kernel, padding "
                    f"(k - 1) / 2); got stride={self.stride}, padding={self.padding}, "
                    f"kernel={self.kernel_size}."
                )
        self.submanifold = bool(submanifold)

    def forward(  # type: ignore[override]
        self, x: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if mask is None:
            return super().forward(x), None
        valid = mask > 0
        out = F.conv2d(
            x.masked_fill(~valid, 0.0),
            self.weight,
            None,
            self.stride,
            self.padding,  # type: ignore[arg-type]
            self.dilation,
            self.groups,
        )
        with torch.no_grad():  # the mask is data, not a learned quantity
            m = valid.float()
            kernel, stride, pad = self.kernel_size, self.stride, self.padding
            # share of the window that is an invalid in-image pixel (zero padding is "valid")
            invalid = F.avg_pool2d(1.0 - m, kernel, stride, pad, count_include_pad=True)  # type: ignore[arg-type]
            if self.submanifold:
                new = m
            else:
                new = (F.max_pool2d(m, kernel, stride, pad) > 0).float()  # type: ignore[arg-type]
            window = kernel[0] * kernel[1]
            scale = new / (1.0 - invalid).clamp_min(1.0 / window)
        out = out * scale.to(out.dtype)
        if self.bias is not None:
            out = out + self.bias.reshape(1, -1, 1, 1) * new.to(out.dtype)
        return out, new.to(x.dtype)


class GRN(nn.Module):
    """Global Response Normalisation (ConvNeXt V2) on a channels-last map (n, H, W, C).

    ``G = ‖x‖₂`` over (H, W) per channel — over the valid positions only when ``mask``
    (n, H, W, 1) is given; ``N = G / (mean_c G + 1e-6)``; ``out = γ·(x·N) + β + x`` with γ, β
    (C,) initialised to 0, so a fresh GRN is the identity.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        xs = x if mask is None else x.masked_fill(mask <= 0, 0.0)
        g = torch.linalg.vector_norm(xs, ord=2, dim=(1, 2), keepdim=True)
        n = g / (g.mean(dim=-1, keepdim=True) + self.eps)
        return self.gamma * (x * n) + self.beta + x


class DropPath(nn.Module):
    """Stochastic depth: in training, drop the residual branch of a whole sample with
    probability ``p`` (and scale the kept ones by 1 / (1 − p)); the identity in evaluation."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConvNeXtV2Block(nn.Module):
    """One ConvNeXt V2 block on an (n, C, H, W) map with an optional mask (n, 1, H, W):
    depthwise 7 × 7 partial conv (submanifold) → LayerNorm (channels-last) → Linear(C → 4C) →
    GELU → :class:`GRN` (valid positions) → Linear(4C → C) → DropPath + residual; no layer
    scale. The output is 0 at invalid positions; the mask is unchanged."""

    def __init__(self, dim: int, drop_path: float = 0.0):
        super().__init__()
        self.dwconv = PartialConv2d(dim, dim, 7, padding=3, groups=dim, submanifold=True)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        y, _ = self.dwconv(x, mask)
        y = y.permute(0, 2, 3, 1)  # (n, H, W, C)
        y = self.act(self.pwconv1(self.norm(y)))
        y = self.grn(y, None if mask is None else mask.permute(0, 2, 3, 1))
        y = self.pwconv2(y).permute(0, 3, 1, 2)
        out = x + self.drop_path(y)
        if mask is not None:
            out = out * _valid(mask, out)
        return out


class SqueezeExcitation(nn.Module):
    """Channel gate of one modality: masked average pool over valid positions → Linear(C → h)
    → ReLU → Linear(h → C) → sigmoid, with h = max(C // ``reduction``, ``min_hidden``).
    ``forward(x (n, C, H, W), mask (n, 1, H, W) | None)`` → weights (n, C) in (0, 1); a sample
    without any valid position pools to 0."""

    def __init__(self, dim: int, reduction: int = SE_REDUCTION, min_hidden: int = SE_MIN_HIDDEN):
        super().__init__()
        hidden = max(dim // reduction, min_hidden)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            pooled = x.mean(dim=(2, 3))
        else:
            m = _valid(mask, x)
            pooled = (x * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1.0)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))


class SEFusionStem(nn.Module):
    """Stage 0 of the encoder: one stem per modality and their SE-weighted fusion.

    Per modality ``k`` (``channels`` name → input channels, in order): partial conv 4 × 4 /
    stride 4 to ``dim`` channels → LayerNorm → 0 at invalid cells → SE weights ``w_k`` (n, dim)
    from its valid cells. ``fused = Σ_k w_k ⊙ f_k`` (``f_k`` is 0 where modality k is invalid, so
    the sum runs over the modalities valid at each position); fused mask = any modality valid
    (None when some modality has no mask, i.e. is everywhere valid).

    After each forward pass: ``last_se_weights`` {name: (n, dim)} the SE channel weights,
    ``last_gates`` {name: (n,)} their mean over channels, ``last_valid_fraction``
    {name: (n,)} the share of the modality's 1/4 cells that are valid — detached, for the
    notebook's "SE fusion weights per landscape" (set ``record = False`` to skip).
    """

    def __init__(
        self,
        channels: Mapping[str, int],
        dim: int,
        se_reduction: int = SE_REDUCTION,
        se_min_hidden: int = SE_MIN_HIDDEN,
    ):
        super().__init__()
        self.modalities = tuple(channels)
        self.stems = nn.ModuleDict(
            {k: PartialConv2d(int(c), dim, 4, stride=4) for k, c in channels.items()}
        )
        self.norms = nn.ModuleDict({k: LayerNorm2d(dim) for k in channels})
        self.se = nn.ModuleDict(
            {k: SqueezeExcitation(dim, se_reduction, se_min_hidden) for k in channels}
        )
        self.record = True
        self.last_se_weights: dict[str, Tensor] = {}
        self.last_gates: dict[str, Tensor] = {}
        self.last_valid_fraction: dict[str, Tensor] = {}

    def forward(
        self, xs: Sequence[Tensor], ms: Sequence[Tensor | None]
    ) -> tuple[Tensor, Tensor | None]:
        fused: Tensor | None = None
        masks: list[Tensor | None] = []
        weights, gates, fractions = {}, {}, {}
        for name, x, m in zip(self.modalities, xs, ms, strict=True):
            f, mc = self.stems[name](x, m)
            f = self.norms[name](f)
            if mc is not None:
                f = f * mc
            w = self.se[name](f, mc)
            part = f * w[:, :, None, None]
            fused = part if fused is None else fused + part
            masks.append(mc)
            if self.record:
                weights[name] = w.detach()
                gates[name] = w.detach().mean(dim=1)
                frac = torch.ones_like(gates[name]) if mc is None else mc.mean(dim=(1, 2, 3))
                fractions[name] = frac.detach()
        if self.record:
            self.last_se_weights, self.last_gates = weights, gates
            self.last_valid_fraction = fractions
        assert fused is not None  # at least one modality (checked at construction)
        if any(m is None for m in masks):
            return fused, None
        mask = masks[0]
        for m in masks[1:]:
            mask = torch.maximum(mask, m)  # type: ignore[arg-type]
        return fused, mask


def _check_sizes(depths: Sequence[int], dims: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    depths, dims = tuple(depths), tuple(dims)
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in depths + dims)
    if len(depths) != 4 or len(dims) != 4 or not ok:
        raise ParameterError(
            f"depths={depths}, dims={dims}: give four positive integers each (the stages at "
            "1/4, 1/8, 1/16 and 1/32 of the input), e.g. depths=(2, 2, 6, 2), "
            "dims=(40, 80, 160, 320), or a preset of PRESETS."
        )
    return depths, dims


def _check_channels(channels: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(channels, Mapping) or not channels:
        raise ParameterError(
            f"channels={channels!r}: give a mapping modality name -> number of input channels, "
            "e.g. {'sar': 3, 'optical': 6}, with at least one modality."
        )
    out: dict[str, int] = {}
    for name, c in channels.items():
        if not isinstance(name, str) or not name:
            raise ParameterError(f"channels: modality name {name!r} must be a non-empty string.")
        if not isinstance(c, int) or isinstance(c, bool) or c < 1:
            raise ParameterError(
                f"channels[{name!r}]={c!r}: the number of input channels must be a positive int."
            )
        out[name] = int(c)
    return out


class ConvNeXtV2Encoder(nn.Module):
    """The masked ConvNeXt V2 encoder with per-modality stems and SE fusion (stage 0 =
    :class:`SEFusionStem`, later stages = LayerNorm + partial 2 × 2 / 2 conv, then
    :class:`ConvNeXtV2Block` s).

    ``forward(xs, ms)`` takes sequences in the order of ``channels`` (use
    :meth:`ConvNeXtUNet.encode` for mappings and checks) and returns ``(features, masks)``: four
    maps (n, dims[i], H / 2^(i+2), W / 2^(i+2)) at 1/4, 1/8, 1/16, 1/32 and their masks
    (n, 1, h, w) float 0/1 (all ones when no modality has a mask).
    """

    def __init__(
        self,
        channels: Mapping[str, int],
        depths: Sequence[int],
        dims: Sequence[int],
        drop_path: float = 0.0,
        se_reduction: int = SE_REDUCTION,
        se_min_hidden: int = SE_MIN_HIDDEN,
    ):
        super().__init__()
        channels = _check_channels(channels)
        depths, dims = _check_sizes(depths, dims)
        if not (isinstance(drop_path, float | int) and 0.0 <= float(drop_path) < 1.0):
            raise ParameterError(f"drop_path={drop_path!r}; allowed: a number in [0, 1).")
        self.channels = channels
        self.depths, self.dims = depths, dims
        self.stem = SEFusionStem(channels, dims[0], se_reduction, se_min_hidden)
        self.down_norms = nn.ModuleList(LayerNorm2d(dims[i - 1]) for i in range(1, 4))
        self.downs = nn.ModuleList(
            PartialConv2d(dims[i - 1], dims[i], 2, stride=2) for i in range(1, 4)
        )
        total = sum(depths)
        rates = [float(drop_path) * j / max(total - 1, 1) for j in range(total)]
        self.stages = nn.ModuleList()
        start = 0
        for depth, dim in zip(depths, dims, strict=True):
            self.stages.append(
                nn.ModuleList(ConvNeXtV2Block(dim, rates[start + j]) for j in range(depth))
            )
            start += depth

    def forward(
        self, xs: Sequence[Tensor], ms: Sequence[Tensor | None]
    ) -> tuple[list[Tensor], list[Tensor]]:
        x, mask = self.stem(xs, ms)
        features: list[Tensor] = []
        masks: list[Tensor | None] = []
        for i, blocks in enumerate(self.stages):
            if i > 0:
                x, mask = self.downs[i - 1](self.down_norms[i - 1](x), mask)
            for block in blocks:
                x = block(x, mask)
            features.append(x)
            masks.append(mask)
        full = [
            m if m is not None else f.new_ones((f.shape[0], 1, f.shape[2], f.shape[3]))
            for f, m in zip(features, masks, strict=True)
        ]
        return features, full


class _ConvNormAct(nn.Sequential):
    """Ordinary 3 × 3 convolution → LayerNorm (channels) → GELU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), LayerNorm2d(cout), nn.GELU())


class UNetDecoder(nn.Module):
    """The dense decoder (see the module docstring): bilinear ×2 upsampling from 1/32 to 1/4
    with concatenated skips and skip masks (two ordinary 3 × 3 conv + LayerNorm + GELU per
    level), bilinear ×4 to full resolution, concatenation with ``extra`` full-resolution
    channels (``extra_channels``: the zero-filled inputs and their masks), 3 × 3 conv +
    LayerNorm + GELU, 1 × 1 conv → (n, 1, H, W)."""

    def __init__(self, dims: Sequence[int], extra_channels: int = 0):
        super().__init__()
        dims = tuple(dims)
        self.levels = nn.ModuleList(
            nn.Sequential(
                _ConvNormAct(dims[i + 1] + dims[i] + 1, dims[i]), _ConvNormAct(dims[i], dims[i])
            )
            for i in range(len(dims) - 2, -1, -1)
        )
        self.head = nn.Sequential(
            _ConvNormAct(dims[0] + extra_channels, dims[0]), nn.Conv2d(dims[0], 1, 1)
        )

    def forward(
        self, features: Sequence[Tensor], masks: Sequence[Tensor], extra: Tensor | None = None
    ) -> Tensor:
        x = features[-1]
        for level, i in zip(self.levels, range(len(features) - 2, -1, -1), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            skip = features[i]
            x = level(torch.cat([x, skip, masks[i].to(skip.dtype)], dim=1))
        x = F.interpolate(x, scale_factor=4.0, mode="bilinear", align_corners=False)
        if extra is not None:
            x = torch.cat([x, extra.to(x.dtype)], dim=1)
        return self.head(x)


def _init_weights(module: nn.Module) -> None:
    """ConvNeXt V2 initialisation: truncated normal (std 0.02) weights, zero biases."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# -- the network -----------------------------------------------------------------------------------


class ConvNeXtUNet(nn.Module):
    """The chapter-4 network: masked ConvNeXt V2 encoder, SE fusion, U-Net decoder (module
    docstring).

    Parameters
    ----------
    channels : modality name → number of input channels, in the order a sequence input uses,
        e.g. ``{"sar": 3, "optical": 6, "terrain": 2, "meteo": 5}``.
    preset : a key of :data:`PRESETS` (``"tiny"``, ``"atto"``, ``"femto"``, ``"pico"``,
        ``"nano"``); ignored when ``depths`` and ``dims`` are given.
    depths, dims : explicit stage sizes (four positive ints each), both or neither.
    drop_path : stochastic depth rate of the last block (linear from 0), in [0, 1).
    se_reduction, se_min_hidden : the SE gate's reduction (16) and smallest hidden width (4).
    full_res_skip : concatenate the zero-filled inputs and their masks before the head.

    ``forward(inputs, masks=None)`` → ``(pred (n, H, W), valid (n, H, W))``;
    :meth:`encode` → the encoder's features and masks at 1/4 … 1/32.
    """

    def __init__(
        self,
        channels: Mapping[str, int],
        preset: str | None = "atto",
        *,
        depths: Sequence[int] | None = None,
        dims: Sequence[int] | None = None,
        drop_path: float = 0.0,
        se_reduction: int = SE_REDUCTION,
        se_min_hidden: int = SE_MIN_HIDDEN,
        full_res_skip: bool = True,
    ):
        super().__init__()
        channels = _check_channels(channels)
        if (depths is None) != (dims is None):
            raise ParameterError("give both depths and dims, or neither (then preset is used).")
        self.preset: str | None = None
        if depths is None:
            if preset not in PRESETS:
                raise ParameterError(
                    f"preset={preset!r}; allowed: {list(PRESETS)} (or explicit depths and dims)."
                )
            depths, dims = PRESETS[preset]
            self.preset = preset
        assert dims is not None
        for name, value in (("se_reduction", se_reduction), ("se_min_hidden", se_min_hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"{name}={value!r}; allowed: a positive int.")
        self.modalities: tuple[str, ...] = tuple(channels)
        self.channels = channels
        self.encoder = ConvNeXtV2Encoder(
            channels, depths, dims, drop_path, se_reduction, se_min_hidden
        )
        self.full_res_skip = bool(full_res_skip)
        extra = sum(channels.values()) + len(channels) if self.full_res_skip else 0
        self.decoder = UNetDecoder(self.encoder.dims, extra)
        self.apply(_init_weights)

    @property
    def dims(self) -> tuple[int, ...]:
        """The encoder's stage widths."""
        return self.encoder.dims

    @property
    def depths(self) -> tuple[int, ...]:
        """The encoder's stage depths (blocks per stage)."""
        return self.encoder.depths

    @property
    def last_se_weights(self) -> dict[str, Tensor]:
        """SE channel weights {modality: (n, dims[0])} of the last forward pass."""
        return self.encoder.stem.last_se_weights

    @property
    def last_gates(self) -> dict[str, Tensor]:
        """Mean SE channel weight {modality: (n,)} of the last forward pass."""
        return self.encoder.stem.last_gates

    @property
    def last_valid_fraction(self) -> dict[str, Tensor]:
        """Share of valid 1/4 cells {modality: (n,)} in the last forward pass."""
        return self.encoder.stem.last_valid_fraction

    def _prepare(
        self,
        inputs: Mapping[str, Tensor] | Sequence[Tensor],
        masks: Mapping[str, Tensor | None] | Sequence[Tensor | None] | None,
    ) -> tuple[list[Tensor], list[Tensor | None]]:
        """Order and check the inputs and masks (raises ParameterError)."""
        names = self.modalities
        if isinstance(inputs, Mapping):
            missing = [k for k in names if k not in inputs]
            extra = [k for k in inputs if k not in names]
            if missing or extra:
                raise ParameterError(
                    f"inputs have modalities {list(inputs)}; the network was built for "
                    f"{list(names)} (missing {missing}, unknown {extra})."
                )
            xs = [inputs[k] for k in names]
        else:
            xs = list(inputs)
            if len(xs) != len(names):
                raise ParameterError(
                    f"{len(xs)} input tensors for the {len(names)} modalities {list(names)}."
                )
        if masks is None:
            ms: list[Tensor | None] = [None] * len(names)
        elif isinstance(masks, Mapping):
            extra = [k for k in masks if k not in names]
            if extra:
                raise ParameterError(f"masks for unknown modalities {extra}; known: {list(names)}.")
            ms = [masks.get(k) for k in names]
        else:
            ms = list(masks)
            if len(ms) != len(names):
                raise ParameterError(
                    f"{len(ms)} masks for the {len(names)} modalities {list(names)}."
                )
        n, h, w = xs[0].shape[0], xs[0].shape[-2], xs[0].shape[-1]
        if h % STRIDE or w % STRIDE:
            raise ParameterError(
                f"input height x width = {h} x {w}; both must be multiples of {STRIDE} (the "
                "encoder downsamples to 1/32). What to do: crop or pad the tiles, e.g. to "
                f"{max(STRIDE, h // STRIDE * STRIDE)} x {max(STRIDE, w // STRIDE * STRIDE)}."
            )
        for name, x, m in zip(names, xs, ms, strict=True):
            want = (n, self.channels[name], h, w)
            if x.ndim != 4 or tuple(x.shape) != want:
                raise ParameterError(
                    f"inputs[{name!r}] has shape {tuple(x.shape)}; expected (n, c, H, W) = {want}."
                )
            if m is not None and (m.ndim != 4 or tuple(m.shape) != (n, 1, h, w)):
                raise ParameterError(
                    f"masks[{name!r}] has shape {tuple(m.shape)}; expected (n, 1, H, W) = "
                    f"{(n, 1, h, w)}."
                )
        return xs, ms

    def encode(
        self,
        inputs: Mapping[str, Tensor] | Sequence[Tensor],
        masks: Mapping[str, Tensor | None] | Sequence[Tensor | None] | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """The encoder's feature maps [(n, dims[i], H / 2^(i+2), W / 2^(i+2))] at 1/4, 1/8,
        1/16, 1/32 and their masks [(n, 1, h, w)] float 0/1 (0 features at invalid cells)."""
        xs, ms = self._prepare(inputs, masks)
        return self.encoder(xs, ms)

    def forward(
        self,
        inputs: Mapping[str, Tensor] | Sequence[Tensor],
        masks: Mapping[str, Tensor | None] | Sequence[Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(pred, valid)``: the regression map (n, H, W) and the output mask (n, H, W) float
        0/1, 1 where at least one modality is valid (ignore ``pred`` where it is 0)."""
        xs, ms = self._prepare(inputs, masks)
        features, fmasks = self.encoder(xs, ms)
        x0 = xs[0]
        ones = x0.new_ones((x0.shape[0], 1, x0.shape[2], x0.shape[3]))
        full = [ones if m is None else (m > 0).to(x0.dtype) for m in ms]
        extra = None
        if self.full_res_skip:
            filled = [
                x if m is None else x.masked_fill(m <= 0, 0.0)
                for x, m in zip(xs, full, strict=True)
            ]
            extra = torch.cat(filled + full, dim=1)
        pred = self.decoder(features, fmasks, extra)[:, 0]
        if any(m is None for m in ms):
            valid = ones[:, 0]
        else:
            valid = full[0]
            for m in full[1:]:
                valid = torch.maximum(valid, m)
            valid = valid[:, 0]
        return pred, valid


def parameter_count(
    preset: str = "atto",
    *,
    channels: Mapping[str, int] | None = None,
    part: str = "encoder",
    num_classes: int = 0,
) -> int:
    """The number of trainable parameters (built on the ``meta`` device: instant, no memory).

    ``channels`` defaults to ``{"image": 3}`` (ImageNet's RGB stem); ``part`` is
    ``"encoder"`` (stems, SE, stages, downsampling) or ``"network"`` (encoder and decoder);
    ``num_classes`` > 0 adds ConvNeXt V2's classifier head (LayerNorm(dims[-1]) +
    Linear(dims[-1] → num_classes)), so ``parameter_count("atto", num_classes=1000)`` is
    comparable with the published 3.7 M (:data:`PUBLISHED_PARAMS`; the SE gate adds 364).
    """
    if part not in ("encoder", "network"):
        raise ParameterError(f"part={part!r}; allowed: 'encoder', 'network'.")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ParameterError(f"num_classes={num_classes!r}; allowed: an int >= 0.")
    with torch.device("meta"):
        net = ConvNeXtUNet(channels or {"image": 3}, preset=preset)
    module = net.encoder if part == "encoder" else net
    count = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if num_classes:
        c = net.dims[-1]
        count += 2 * c + c * num_classes + num_classes
    return count
