"""SSL-SoilNet (Kakhani et al., IEEE TGRS 2024): self-supervised image + climate pre-training
for soil organic carbon.

Two encoders map each location to a 128-d embedding: a **Vision Transformer** reads the
14-channel image patch, a **time-series Transformer** reads the monthly climate series. They are
first **pre-trained without labels** on many unlabelled locations with a cross-modal contrastive
loss (the image and the climate of the same location are a positive pair, the other locations of
the mini-batch are negatives), then **fine-tuned** as a whole, with a regression head on the
concatenated embeddings, on the few labelled locations. The same class with ``pretrain="none"``
is the **supervised-only control**: the very same encoders, head, inputs and fine-tuning
settings, trained from a random initialisation — a true same-architecture control (the
official code's is not: its ViT has a 1024-d output).

Architecture (sizes per the official code, moienr/SoilNet v2.0.0, for the full profile)
--------------------------------------------------------------------------------------
**Image** (:class:`PatchViT`): the standardised patch (n, C, P, P) is cut into
(P / ``patch_size``)² non-overlapping patches (``patch_size`` 8 as in the paper), each linearly
embedded to ``image_width`` (a strided convolution), a **CLS token** is prepended and learned
**position embeddings** added (both zero-initialised, as the official code), dropout 0.1; then
``image_depth`` **pre-norm** Transformer encoder layers (``image_heads`` heads, MLP ratio 4,
GELU, LayerNorm eps 1e-6, qkv bias, dropout 0.1), a final LayerNorm, and
``Linear(image_width → embed_dim)`` on the CLS token. Full: ViT-B, 768 wide, 12 layers, 12
heads.

**Climate** (:class:`ClimateTransformer`, the official "TST"): the standardised series
(n, T = 61 months, V = 13 variables) goes through ``Linear(V → d)·√d`` (d = ``climate_width``),
fixed **sinusoidal** positions, dropout 0.1, ``climate_depth`` post-norm encoder layers
(``climate_heads`` heads, feed-forward 4·d, GELU, dropout 0.1) with **LayerNorm** where the
official code has BatchNorm, then GELU and — as the official code — the T × d outputs are
**flattened** into ``Linear(T·d → embed_dim)`` (``climate_pool="flatten"``; ``"mean"`` averages the
months first). Full: 512 wide, 6 layers, 8 heads.

**Head** (fine-tuning): ``[image embedding ‖ climate embedding]`` (128 each) →
``Linear(→ 128)`` → GELU → ``Linear(128 → 1)``, the standardised target.

Pre-training (``pretrain="contrastive"``)
-----------------------------------------
:func:`info_nce` with cosine similarity and temperature 0.5 on the two 128-d outputs (no
projection heads, as the official code), through the training loop's
:class:`~soilbook.train.ContrastiveTask`: early stopping on the same loss over an inner
validation split of the unlabelled rows, and the positive's **retrieval top-1 / top-5** among
the mini-batch recorded every epoch (``History.metrics``: ``val_top1``, ``val_top5``, as the
official code logs). ``contrastive_loss="clip"`` (default) is the CLIP-style cross-modal loss,
``"ntxent"`` the official symmetric NT-Xent over the 2N stacked embeddings (see
:data:`DEPARTURES` for why CLIP-style is the default).

**One modality** (RaCA has no image; ``modalities="climate"``, or ``"image"``): contrastive
pre-training contrasts **two augmented views** of the same input through one shared encoder
(SimCLR-style). Climate views: each month of the series is masked (all its variables set to 0,
the training mean) with probability ``mask_prob`` (0.15), then Gaussian jitter of standard
deviation ``jitter`` (0.05, standardised units) is added. Image views: a random horizontal and
vertical flip and a random multiple of 90° rotation per sample, then the same jitter. In
evaluation mode (the validation loss) the views are drawn from fixed seeds, so the validation
loss compares like with like from epoch to epoch.

No leakage (:func:`pretrain_rows`)
----------------------------------
``fit(ds)`` sees the training fold only. Pre-training uses the unlabelled locations whose
``group`` (the spatial block) is among ``ds``'s groups: in a spatial split the unlabelled
locations of the held-out blocks are dropped, so pre-training never sees the inputs of the test
blocks (in a random split every block is a training block and every unlabelled location is
used; they are other locations than the labelled test samples). Input standardisation (per
image channel over samples and pixels, per climate variable over samples and months) uses the
pre-training rows when ``unlabelled`` is given — for the control too, so both see identically
scaled inputs — else the labelled training rows; never test rows.

Label fractions and a shared pre-training
-----------------------------------------
``label_fraction`` keeps that share of ``ds``'s labelled rows for fine-tuning (nested subsets:
:func:`soilbook.evaluate.label_subset`, the rule :class:`soilbook.evaluate.LabelFraction` applies to
any other model).
The leakage rule reads the groups of the whole ``ds``, so the pre-training stage of one fold and
seed is the same for every label fraction and every fine-tuning setting: it checkpoints in its
own folder ``checkpoint_dir / pretrain_checkpoint_key(ds)`` (``SSLSoilNetPretrain-<16 hex>``,
independent of the label fraction and of every fine-tuning-only parameter), so fits at 5, 10,
25, 50 and 100 % of the labels on one fold train it once and restore it afterwards (a file lock
makes a concurrent fit wait). Without ``checkpoint_dir`` the finished stage is kept in memory
for the process (:func:`clear_pretrain_cache`). Subsetting the fold *outside* the estimator
instead (``label_fraction_split``) also works, but then the groups of a small subset decide the
pre-training rows and the stage is not shared.

GPU readiness
-------------
``precision="bf16"`` enables bfloat16 autocast on CUDA (never on the CPU, which trains in
float32 and is exactly reproducible); ``compile=True`` wraps the forward in
:func:`torch.compile` on CUDA. Inputs up to 40 % of the GPU's free memory are moved there once
and batched by indexing (no DataLoader), so the GPU is not starved by host-side collation.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from soilbook.data.schema import SAMPLE, SchemaError, validate_samples
from soilbook.errors import ParameterError
from soilbook.models import base as _base
from soilbook.models.base import (
    NetworkRegressor,
    dataset_digest,
    inner_validation_split,
    load_weights,
    select_names,
)
from soilbook.train import (
    CONTRASTIVE_FORMS,
    ContrastiveTask,
    History,
    TrainConfig,
    info_nce,
    retrieval_accuracy,
    set_seed,
)

__all__ = [
    "CLIMATE_POOLS",
    "CONTRASTIVE_FORMS",
    "DEPARTURES",
    "MIN_CONTRASTIVE_BATCH",
    "MODALITIES",
    "PRECISIONS",
    "PRETRAIN_CHOICES",
    "PRETRAIN_PARAMS",
    "ClimateTransformer",
    "PatchViT",
    "SSLPretrainNet",
    "SSLSoilNet",
    "SSLSoilNetRegressor",
    "augment_climate",
    "augment_patches",
    "clear_pretrain_cache",
    "info_nce",
    "pretrain_rows",
    "retrieval_accuracy",
    "sinusoidal_positions",
]

#: ``modalities``: image and climate, the climate series alone (RaCA), the image alone.
MODALITIES = ("both", "climate", "image")
#: ``pretrain``: none (the supervised-only control) or cross-modal / two-view contrastive.
PRETRAIN_CHOICES = ("none", "contrastive")
#: ``precision``: float32 everywhere, or bfloat16 autocast on CUDA.
PRECISIONS = ("fp32", "bf16")
#: ``climate_pool``: flatten the months into the output layer (official), or average them.
CLIMATE_POOLS = ("flatten", "mean")
#: Smallest contrastive mini-batch: fewer in-batch negatives make the task trivial.
MIN_CONTRASTIVE_BATCH = 8
#: The parameters that define the pre-training stage (its checkpoint key and in-memory cache);
#: everything else (label_fraction, epochs, batch_size, learning_rate, loss, ...) only changes
#: the fine-tuning, so fits that differ only there share one pre-training.
PRETRAIN_PARAMS = (
    "modalities",
    "temperature",
    "contrastive_loss",
    "pretrain_epochs",
    "pretrain_batch_size",
    "pretrain_learning_rate",
    "image_width",
    "image_depth",
    "image_heads",
    "climate_width",
    "climate_depth",
    "climate_heads",
    "patch_size",
    "embed_dim",
    "dropout",
    "climate_pool",
    "mask_prob",
    "jitter",
    "weight_decay",
    "patience",
    "min_epochs",
    "max_grad_norm",
    "val_fraction",
    "seed",
    "precision",
)

#: The departures from the paper and its official code, and the choices the paper leaves open,
#: one line each, for notebooks and reports.
DEPARTURES: tuple[str, ...] = (
    "Contrastive loss: CLIP-style symmetric cross-modal InfoNCE (image_i vs all climate_j and "
    "climate_i vs all image_j, cosine, temperature 0.5) instead of the official NT-Xent over the "
    "2N stacked embeddings. The two encoders read different modalities; NT-Xent's extra "
    "same-modality negatives (image-image, climate-climate) only spread each modality out and "
    "push apart the nearly identical climate series of neighbouring locations, which teaches "
    "nothing about the cross-modal correspondence the retrieval metric and the fine-tuning use. "
    "The official form is available (contrastive_loss='ntxent') and tested.",
    "Retrieval top-1/top-5 are cross-modal (the positive among the pretrain_batch_size "
    "candidates of the other modality, both directions averaged, ties counted against it), not "
    "among the 2N - 1 candidates of the NT-Xent logits; compare them with chance = k / batch.",
    "LayerNorm instead of BatchNorm in the climate Transformer: batch statistics are unreliable "
    "for the small fine-tuning batches of a 5 % label fraction and differ between training and "
    "evaluation; LayerNorm normalises each sample alone.",
    "Climate output: GELU, then the 61 x d outputs flattened into Linear(61 d -> 128) as in the "
    "official code (the calendar is fixed, so month-specific weights can read the seasonal "
    "timing); climate_pool='mean' averages the months instead.",
    "A final LayerNorm on the ViT tokens before the CLS projection (standard ViT practice; the "
    "paper does not say).",
    "Regression head: concat(128, 128) -> Linear(128) -> GELU -> Linear(1) on a standardised "
    "target, instead of per-branch Linear(128)+sigmoid, Linear(128)+sigmoid, Linear(1) on "
    "min-max scaled SOC (sigmoids saturate; global min-max used test data).",
    "Inputs standardised per image channel and per climate variable with statistics of the "
    "fold's pre-training (else training) rows only, instead of one global min-max over all "
    "points and months, test included (official defect 2).",
    "AdamW with a cosine learning-rate schedule and early stopping on an inner validation split "
    "(the contrastive loss for pre-training, the regression loss for fine-tuning), instead of "
    "Adam 1e-4 with StepLR(10, 0.2) for fixed epochs.",
    "A same-architecture supervised-only control (pretrain='none': same encoders, head, inputs, "
    "standardisation and fine-tuning settings, random initialisation) instead of the official "
    "baseline with a 1024-d ViT output.",
    "Pre-training sees only unlabelled locations in the training fold's spatial blocks (never "
    "the inputs of held-out blocks); the official code pre-trained on every location.",
    "Without an image (RaCA) the contrastive task uses two augmented views of the climate "
    "series (months masked with p = 0.15, Gaussian jitter 0.05 in standardised units) through "
    "one encoder; the paper always pairs an image with a climate series.",
)

#: Pre-training stages kept in memory when ``checkpoint_dir`` is None (key -> stage).
_PRETRAIN_CACHE: OrderedDict[str, dict[str, Any]] = OrderedDict()
_PRETRAIN_CACHE_SIZE = 4


def clear_pretrain_cache() -> None:
    """Forget the pre-training stages kept in memory (fits without ``checkpoint_dir``)."""
    _PRETRAIN_CACHE.clear()


# -- data rules ----------------------------------------------------------------------------------


def pretrain_rows(unlabelled: xr.Dataset, ds: xr.Dataset) -> np.ndarray:
    """Positions of the unlabelled locations pre-training may use when fitted on ``ds``.

    The leakage rule: a location is allowed when its ``group`` (spatial block) is among the
    groups of the training samples ``ds``; in a spatial-block split the unlabelled locations of
    the test blocks are dropped. Raises :class:`~soilbook.errors.SchemaError` when either set
    lacks ``group``.
    """
    for what, data in (("the unlabelled set", unlabelled), ("the training set", ds)):
        if "group" not in data.coords:
            raise SchemaError(
                f"{what} has no 'group' coordinate, so the held-out blocks cannot be left out "
                "of pre-training. What to do: build it with the same block rule as the "
                "labelled samples (soilbook.data.soc)."
            )
    allowed = np.unique(ds["group"].values.astype(str))
    return np.flatnonzero(np.isin(unlabelled["group"].values.astype(str), allowed))


# -- modules -------------------------------------------------------------------------------------


def sinusoidal_positions(n: int, width: int) -> Tensor:
    """The fixed sine/cosine position encoding (n, width) of "Attention is all you need":
    ``PE[t, 2i] = sin(t / 10000^(2i/width))``, ``PE[t, 2i+1] = cos(...)`` (float32)."""
    pos = torch.arange(int(n), dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, width, 2, dtype=torch.float64) * (-math.log(10000.0) / width))
    out = torch.zeros(int(n), int(width), dtype=torch.float64)
    out[:, 0::2] = torch.sin(pos * div)
    out[:, 1::2] = torch.cos(pos * div)[:, : width // 2]
    return out.float()


def _encoder_layers(
    width: int, heads: int, depth: int, dropout: float, *, norm_first: bool, **extra: Any
) -> nn.ModuleList:
    """``depth`` Transformer encoder layers of both SSL-SoilNet encoders: ``heads`` heads,
    feed-forward 4·width, GELU, ``dropout``, batch first; pre-norm (``norm_first=True``, the
    ViT) or post-norm (the climate Transformer); ``extra`` goes to
    :class:`torch.nn.TransformerEncoderLayer` (e.g. ``layer_norm_eps``)."""
    return nn.ModuleList(
        nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=4 * width,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=norm_first,
            **extra,
        )
        for _ in range(depth)
    )


class PatchViT(nn.Module):
    """Vision Transformer on a (n, channels, size, size) patch → (n, embed_dim).

    Patch embedding (``patch_size``² pixels → ``width``), zero-initialised CLS token and
    position embeddings, dropout, ``depth`` pre-norm encoder layers (``heads`` heads, MLP ratio
    4, GELU, LayerNorm eps 1e-6, qkv bias, ``dropout``), a final LayerNorm and
    ``Linear(width → embed_dim)`` on the CLS token.
    """

    def __init__(
        self,
        channels: int,
        size: int,
        *,
        patch_size: int = 8,
        width: int = 768,
        depth: int = 12,
        heads: int = 12,
        embed_dim: int = 128,
        dropout: float = 0.1,
    ):
        super().__init__()
        if size % patch_size:
            raise ValueError(f"patch_size={patch_size} does not divide the patch side {size}.")
        self.n_tokens = (size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(channels, width, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.zeros(1, self.n_tokens + 1, width))
        self.drop = nn.Dropout(dropout)
        self.layers = _encoder_layers(
            width, heads, depth, dropout, norm_first=True, layer_norm_eps=1e-6
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.out = nn.Linear(width, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (n, tokens, width)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        h = self.drop(torch.cat([cls, tokens], dim=1) + self.position)
        for layer in self.layers:
            h = layer(h)
        return self.out(self.norm(h[:, 0]))


class ClimateTransformer(nn.Module):
    """Time-series Transformer on a (n, months, variables) series → (n, embed_dim).

    ``Linear(variables → width)·√width`` + fixed sinusoidal positions, dropout, ``depth``
    post-norm encoder layers with LayerNorm (``heads`` heads, feed-forward 4·width, GELU,
    ``dropout``), GELU, then ``Linear(months·width → embed_dim)`` on the flattened outputs
    (``pool="flatten"``, the official code) or ``Linear(width → embed_dim)`` on their mean over
    the months (``pool="mean"``).
    """

    def __init__(
        self,
        variables: int,
        months: int,
        *,
        width: int = 512,
        depth: int = 6,
        heads: int = 8,
        embed_dim: int = 128,
        dropout: float = 0.1,
        pool: str = "flatten",
    ):
        super().__init__()
        if pool not in CLIMATE_POOLS:
            raise ValueError(f"pool={pool!r}; allowed: {list(CLIMATE_POOLS)}.")
        self.pool = pool
        self.scale = math.sqrt(width)
        self.project = nn.Linear(variables, width)
        self.register_buffer("positions", sinusoidal_positions(months, width)[None])
        self.drop = nn.Dropout(dropout)
        self.layers = _encoder_layers(width, heads, depth, dropout, norm_first=False)
        self.out = nn.Linear(months * width if pool == "flatten" else width, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(self.project(x) * self.scale + self.positions)
        for layer in self.layers:
            h = layer(h)
        h = F.gelu(h)
        h = h.flatten(1) if self.pool == "flatten" else h.mean(dim=1)
        return self.out(h)


def _noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def augment_climate(
    x: Tensor, mask_prob: float, jitter: float, generator: torch.Generator | None = None
) -> Tensor:
    """A random view of standardised climate series (n, months, variables): each month of each
    sample is masked (all variables set to 0, the training mean) with probability
    ``mask_prob``, then Gaussian noise of standard deviation ``jitter`` is added."""
    keep = torch.rand(x.shape[:2], generator=generator, device=x.device) >= mask_prob
    out = x * keep[..., None].to(x.dtype)
    if jitter > 0:
        out = out + jitter * _noise_like(x, generator)
    return out


def augment_patches(x: Tensor, jitter: float, generator: torch.Generator | None = None) -> Tensor:
    """A random view of standardised square patches (n, channels, size, size): per sample a
    horizontal flip and a vertical flip (each with probability 1/2) and a rotation by a random
    multiple of 90°, then Gaussian noise of standard deviation ``jitter``."""
    n = x.shape[0]
    draws = torch.rand((n, 3), generator=generator, device=x.device)
    flip_x = (draws[:, 0] < 0.5)[:, None, None, None]
    flip_y = (draws[:, 1] < 0.5)[:, None, None, None]
    out = torch.where(flip_x, x.flip(-1), x)
    out = torch.where(flip_y, out.flip(-2), out)
    turns = (draws[:, 2] * 4).long().clamp(max=3)
    rotated = [torch.rot90(out, k, dims=(-2, -1)) for k in range(4)]
    out = torch.stack(rotated)[turns, torch.arange(n, device=x.device)]
    if jitter > 0:
        out = out + jitter * _noise_like(out, generator)
    return out


class SSLPretrainNet(nn.Module):
    """The encoders during pre-training; ``forward(*inputs) -> (za, zb)`` for
    :class:`~soilbook.train.ContrastiveTask`.

    With both encoders the inputs are ``(patches, climate)`` and the pair is (image embedding,
    climate embedding). With one encoder the input is that modality and the pair is the
    embeddings of two augmented views (:func:`augment_climate`, :func:`augment_patches`): drawn
    from torch's global generator in training mode, from fixed seeds (0 and 1) in evaluation
    mode. Submodule names (``image``, ``climate``) match :class:`SSLSoilNet`'s, so the state dict
    loads into the fine-tuning network.
    """

    def __init__(
        self,
        image: PatchViT | None,
        climate: ClimateTransformer | None,
        mask_prob: float = 0.15,
        jitter: float = 0.05,
    ):
        super().__init__()
        if image is None and climate is None:
            raise ValueError("SSLPretrainNet needs at least one encoder.")
        self.image = image
        self.climate = climate
        self.mask_prob = float(mask_prob)
        self.jitter = float(jitter)

    def _view(self, x: Tensor, which: int) -> Tensor:
        gen = None
        if not self.training:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(which)
        if self.climate is not None:
            return augment_climate(x, self.mask_prob, self.jitter, gen)
        return augment_patches(x, self.jitter, gen)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        if self.image is not None and self.climate is not None:
            return self.image(inputs[0]), self.climate(inputs[1])
        encoder = self.climate if self.climate is not None else self.image
        x = inputs[0]
        return encoder(self._view(x, 0)), encoder(self._view(x, 1))


class SSLSoilNet(nn.Module):
    """The fine-tuning network: encoders → concatenated embeddings → MLP head → (n,).

    ``forward(*inputs)`` takes ``(patches, climate)``, ``(climate,)`` or ``(patches,)`` (the
    encoders that exist, in that order), standardised, and returns the standardised prediction.
    :meth:`embeddings` returns the encoders' outputs.
    """

    def __init__(
        self, image: PatchViT | None, climate: ClimateTransformer | None, embed_dim: int = 128
    ):
        super().__init__()
        if image is None and climate is None:
            raise ValueError("SSLSoilNet needs at least one encoder.")
        self.image = image
        self.climate = climate
        n_branches = (image is not None) + (climate is not None)
        self.head = nn.Sequential(
            nn.Linear(n_branches * embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, 1)
        )

    def embeddings(self, *inputs: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        i = 0
        if self.image is not None:
            out["image"] = self.image(inputs[i])
            i += 1
        if self.climate is not None:
            out["climate"] = self.climate(inputs[i])
        return out

    def forward(self, *inputs: Tensor) -> Tensor:
        parts = list(self.embeddings(*inputs).values())
        return self.head(torch.cat(parts, dim=1)).reshape(-1)


# -- the estimator -------------------------------------------------------------------------------


def _is_int(value: Any, low: int = 1) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= low


def _is_number(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(float(value))
    )


class SSLSoilNetRegressor(NetworkRegressor):
    """SSL-SoilNet as a scikit-learn regressor on a chapter-3 sample set (module docstring).

    Parameters
    ----------
    modalities : ``"both"`` (image patch + climate series), ``"climate"`` or ``"image"``.
    pretrain : ``"contrastive"`` (pre-train the encoders on ``unlabelled``, then fine-tune) or
        ``"none"`` (the supervised-only control: same network, random initialisation).
    unlabelled : the unlabelled locations (same inputs as the samples, ``group`` by the same
        block rule, no target), or None. Needed for pre-training; with ``pretrain="none"`` it
        only supplies the input statistics, so the control sees the inputs scaled as the
        pre-trained model does.
    label_fraction : share of ``ds``'s labelled rows used for fine-tuning, in (0, 1]
        (:func:`soilbook.evaluate.label_subset`; pre-training does not depend on it).
    pretrain_epochs, pretrain_batch_size, pretrain_learning_rate : the pre-training run (the
        batch is also the number of in-batch candidates; at least
        :data:`MIN_CONTRASTIVE_BATCH`).
    temperature : of the InfoNCE loss (> 0; the paper's 0.5).
    contrastive_loss : ``"clip"`` (cross-modal, default) or ``"ntxent"`` (official NT-Xent).
    image_width, image_depth, image_heads, patch_size : the ViT (full: 768, 12, 12, 8).
    climate_width, climate_depth, climate_heads, climate_pool : the climate Transformer
        (full: 512, 6, 8, "flatten").
    embed_dim : the embedding size of both encoders (128).
    dropout : in both encoders (0.1 as the official code).
    mask_prob, jitter : the single-modality views (month masking probability; noise standard
        deviation in standardised units).
    precision : ``"bf16"`` (bfloat16 autocast on CUDA; the CPU always trains in float32) or
        ``"fp32"``.
    compile : :func:`torch.compile` the forward on CUDA (ignored on the CPU).
    (fine-tuning settings — ``epochs``, ``batch_size``, ``learning_rate``, ``patience``,
    ``min_epochs``, ``loss``, ``val_fraction``, ``seed``, ``device``, ``checkpoint_dir``,
    ``progress``, … — as in :class:`~soilbook.models.base.NetworkRegressor`; ``weight_decay``,
    ``patience``, ``min_epochs``, ``max_grad_norm`` and ``val_fraction`` also apply to
    pre-training.)

    Attributes
    ----------
    module_ : the fine-tuned :class:`SSLSoilNet`; pretrain_module_ : the pre-trained
        :class:`SSLPretrainNet` (None without pre-training); pretrained_state_ : its state dict
        (CPU tensors; usable as another network's ``init_weights``).
    history_, pretrain_history_ : the two runs (:meth:`training_histories`).
    pretrain_rows_ : positions in ``unlabelled`` of the rows pre-training used;
    pretrain_inner_split_ : their early-stopping split; pretrain_checkpoint_path_ : the
    pre-training's checkpoint folder (or None); pretrain_restored_ : whether the stage was
    restored (checkpoint or memory) rather than trained. label_rows_ : positions in ``ds`` of
    the labelled rows used for fine-tuning. modalities_ : the input names used.
    """

    _applies_init_weights = True

    def __init__(
        self,
        *,
        modalities: str = "both",
        pretrain: str = "contrastive",
        unlabelled: xr.Dataset | None = None,
        label_fraction: float = 1.0,
        pretrain_epochs: int = 40,
        pretrain_batch_size: int = 64,
        pretrain_learning_rate: float = 1e-3,
        temperature: float = 0.5,
        contrastive_loss: str = "clip",
        image_width: int = 64,
        image_depth: int = 2,
        image_heads: int = 4,
        patch_size: int = 8,
        climate_width: int = 64,
        climate_depth: int = 2,
        climate_heads: int = 4,
        climate_pool: str = "flatten",
        embed_dim: int = 128,
        dropout: float = 0.1,
        mask_prob: float = 0.15,
        jitter: float = 0.05,
        precision: str = "bf16",
        compile: bool = False,
        epochs: int = 60,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        patience: int = 10,
        **kwargs: Any,
    ):
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            **kwargs,
        )
        self.modalities = modalities
        self.pretrain = pretrain
        self.unlabelled = unlabelled
        self.label_fraction = label_fraction
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_learning_rate = pretrain_learning_rate
        self.temperature = temperature
        self.contrastive_loss = contrastive_loss
        self.image_width = image_width
        self.image_depth = image_depth
        self.image_heads = image_heads
        self.patch_size = patch_size
        self.climate_width = climate_width
        self.climate_depth = climate_depth
        self.climate_heads = climate_heads
        self.climate_pool = climate_pool
        self.embed_dim = embed_dim
        self.dropout = dropout
        self.mask_prob = mask_prob
        self.jitter = jitter
        self.precision = precision
        self.compile = compile

    # -- scikit-learn plumbing --------------------------------------------------------------------

    def __sklearn_clone__(self) -> SSLSoilNetRegressor:
        """A clone that **shares** ``unlabelled`` (and ``init_weights``) instead of deep-copying
        them: they are read, never changed, and a pre-training set can be gigabytes."""
        params = self.get_params(deep=False)
        shared = {name: params.pop(name) for name in ("unlabelled", "init_weights")}
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, **shared)

    # -- settings ---------------------------------------------------------------------------------

    @property
    def _pretraining(self) -> bool:
        return self.pretrain == "contrastive"

    def _check_params(self) -> None:
        super()._check_params()
        name = type(self).__name__
        choices = (
            ("modalities", MODALITIES),
            ("pretrain", PRETRAIN_CHOICES),
            ("contrastive_loss", CONTRASTIVE_FORMS),
            ("precision", PRECISIONS),
            ("climate_pool", CLIMATE_POOLS),
        )
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                raise ParameterError(
                    f"{name}: {key}={getattr(self, key)!r}; allowed: {list(allowed)}."
                )
        for key in (
            "pretrain_epochs",
            "pretrain_batch_size",
            "image_width",
            "image_depth",
            "image_heads",
            "patch_size",
            "climate_width",
            "climate_depth",
            "climate_heads",
            "embed_dim",
        ):
            if not _is_int(getattr(self, key)):
                raise ParameterError(f"{name}: {key}={getattr(self, key)!r} must be an int >= 1.")
        for width, heads in (("image_width", "image_heads"), ("climate_width", "climate_heads")):
            if getattr(self, width) % getattr(self, heads):
                raise ParameterError(
                    f"{name}: {width}={getattr(self, width)} must be divisible by "
                    f"{heads}={getattr(self, heads)}."
                )
        if not _is_number(self.temperature) or float(self.temperature) <= 0:
            raise ParameterError(
                f"{name}: temperature={self.temperature!r} must be a number > 0 (the paper's "
                "is 0.5); it divides the cosine similarities of the contrastive loss."
            )
        if self._pretraining and self.pretrain_batch_size < MIN_CONTRASTIVE_BATCH:
            raise ParameterError(
                f"{name}: pretrain_batch_size={self.pretrain_batch_size} is too small for "
                f"contrastive learning (at least {MIN_CONTRASTIVE_BATCH}: every other sample of "
                "the batch is a negative, so a tiny batch makes the task trivial). What to do: "
                "use 32-256 (the official code: 32)."
            )
        if not _is_number(self.label_fraction) or not 0 < float(self.label_fraction) <= 1:
            raise ParameterError(
                f"{name}: label_fraction={self.label_fraction!r} must lie in (0, 1] (e.g. 0.05, "
                "0.1, 0.25, 0.5, 1.0)."
            )
        if not _is_number(self.pretrain_learning_rate) or self.pretrain_learning_rate <= 0:
            raise ParameterError(
                f"{name}: pretrain_learning_rate={self.pretrain_learning_rate!r} must be > 0."
            )
        for key, low, high in (("dropout", 0.0, 1.0), ("mask_prob", 0.0, 1.0)):
            value = getattr(self, key)
            if not _is_number(value) or not low <= float(value) < high:
                raise ParameterError(f"{name}: {key}={value!r} must be in [{low}, {high}).")
        if not _is_number(self.jitter) or self.jitter < 0:
            raise ParameterError(f"{name}: jitter={self.jitter!r} must be a number >= 0.")
        if not isinstance(self.compile, bool | np.bool_):
            raise ParameterError(f"{name}: compile={self.compile!r} must be True or False.")
        if self.unlabelled is not None and not isinstance(self.unlabelled, xr.Dataset):
            raise ParameterError(
                f"{name}: unlabelled must be a sample set (xarray.Dataset) or None; got "
                f"{type(self.unlabelled).__name__}."
            )
        if self._pretraining and self.unlabelled is None:
            raise ParameterError(
                f"{name}: pretrain='contrastive' needs unlabelled locations (unlabelled=...). "
                "What to do: pass SocData.unlabelled, or use pretrain='none' (the "
                "supervised-only control)."
            )
        if self._pretraining and self.init_weights is not None:
            raise ParameterError(
                f"{name}: init_weights and pretrain='contrastive' both set the starting weights. "
                "What to do: use pretrain='none' with init_weights, or leave init_weights=None."
            )

    def _needs(self) -> tuple[str, ...]:
        """The input variables of ``modalities``, in the network's input order."""
        return {"both": ("patches", "climate"), "climate": ("climate",), "image": ("patches",)}[
            self.modalities
        ]

    def _check_data(self, ds: xr.Dataset) -> None:
        """Checks of the data against the settings, cheap (names and sizes), before any heavy
        work: the modalities' inputs exist in ``ds`` (and in ``unlabelled`` for pre-training),
        the patch is square and ``patch_size`` divides it, enough unlabelled rows are allowed."""
        name = type(self).__name__
        sets = [("the training samples", ds)]
        if self.unlabelled is not None:
            sets.append(("the unlabelled set", self.unlabelled))
        for what, data in sets:
            for var in self._needs():
                if var not in data.data_vars:
                    hint = (
                        "use modalities='climate' (the data have no image patches, e.g. RaCA "
                        "from the mirror)"
                        if var == "patches"
                        else "use modalities='image', or add the climate series"
                    )
                    raise ParameterError(
                        f"{name}: modalities={self.modalities!r} needs '{var}', but {what} "
                        f"lack(s) it. What to do: {hint}."
                    )
        if "patches" in self._needs():
            side_y, side_x = int(ds.sizes["y"]), int(ds.sizes["x"])
            if side_y != side_x:
                raise SchemaError(
                    f"the patches are {side_y} x {side_x} pixels; the ViT needs square patches."
                )
            if side_y % int(self.patch_size) or side_y < int(self.patch_size):
                raise ParameterError(
                    f"{name}: patch_size={self.patch_size} does not divide the {side_y}-pixel "
                    f"patch side. What to do: choose a divisor of {side_y} (the paper: 8 on 64)."
                )
        if self._pretraining:
            rows = pretrain_rows(self.unlabelled, ds)
            if rows.size < int(self.pretrain_batch_size):
                raise ParameterError(
                    f"{name}: only {rows.size} unlabelled location(s) lie in the training "
                    f"set's groups, fewer than pretrain_batch_size={self.pretrain_batch_size}. "
                    "What to do: pass more unlabelled locations (with 'group' by the same block "
                    "rule), a smaller pretrain_batch_size, or pretrain='none'."
                )

    def _train_config(self, checkpoint_dir: Path | None = None) -> TrainConfig:
        cfg = super()._train_config(checkpoint_dir)
        cfg.amp = self.precision == "bf16"
        cfg.compile = bool(self.compile)
        return cfg

    # -- inputs -----------------------------------------------------------------------------------

    def _setup_inputs(self, ds: xr.Dataset) -> None:
        self.modalities_ = list(self._needs())
        self.layers_: list[str] = []
        self.layer_groups_: list[str] = []
        self.variables_: list[str] = []
        self.n_months_ = 0
        self.patch_pixels_ = 0
        if "patches" in self.modalities_:
            self.layers_ = [str(v) for v in ds["layer"].values]
            groups = ds["layer_group"].values if "layer_group" in ds.coords else None
            self.layer_groups_ = (
                [str(g) for g in groups] if groups is not None else ["other"] * len(self.layers_)
            )
            self.patch_pixels_ = int(ds.sizes["y"])
        if "climate" in self.modalities_:
            self.variables_ = [str(v) for v in ds["variable"].values]
            self.n_months_ = int(ds.sizes["time"])

    def _arrays(self, ds: xr.Dataset) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if "patches" in self.modalities_:
            da = select_names(ds["patches"], "layer", self.layers_, "the patches")
            da = da.transpose(SAMPLE, "layer", "y", "x")
            if da.shape[2] != self.patch_pixels_ or da.shape[3] != self.patch_pixels_:
                raise SchemaError(
                    f"the patches are {da.shape[2]} x {da.shape[3]} pixels but the model was "
                    f"trained on {self.patch_pixels_} x {self.patch_pixels_}. What to do: cut "
                    "patches of the training size."
                )
            out["patches"] = da.values.astype(np.float32)
        if "climate" in self.modalities_:
            da = select_names(ds["climate"], "variable", self.variables_, "the climate series")
            da = da.transpose(SAMPLE, "time", "variable")
            if da.shape[1] != self.n_months_:
                raise SchemaError(
                    f"the climate series has {da.shape[1]} months but the model was trained on "
                    f"{self.n_months_}. What to do: use the same months (soilbook.data.soc)."
                )
            out["climate"] = da.values.astype(np.float32)
        return out

    def _stat_axes(self, name: str, ndim: int) -> tuple[int, ...]:
        """Per image channel (over samples and pixels) and per climate variable (over samples
        and months)."""
        if name == "climate":
            return (0, 1)
        return super()._stat_axes(name, ndim)

    def _input_groups(self) -> dict[str, Any]:
        return {"patches": list(self.layer_groups_), "climate": "climate"}

    # -- modules ----------------------------------------------------------------------------------

    def _encoders(self) -> tuple[PatchViT | None, ClimateTransformer | None]:
        image = climate = None
        if "patches" in self.modalities_:
            image = PatchViT(
                len(self.layers_),
                self.patch_pixels_,
                patch_size=int(self.patch_size),
                width=int(self.image_width),
                depth=int(self.image_depth),
                heads=int(self.image_heads),
                embed_dim=int(self.embed_dim),
                dropout=float(self.dropout),
            )
        if "climate" in self.modalities_:
            climate = ClimateTransformer(
                len(self.variables_),
                self.n_months_,
                width=int(self.climate_width),
                depth=int(self.climate_depth),
                heads=int(self.climate_heads),
                embed_dim=int(self.embed_dim),
                dropout=float(self.dropout),
                pool=self.climate_pool,
            )
        return image, climate

    def _build_module(self, ds: xr.Dataset, arrays: dict[str, np.ndarray]) -> SSLSoilNet:
        image, climate = self._encoders()
        return SSLSoilNet(image, climate, int(self.embed_dim))

    def _build_pretrain_module(self) -> SSLPretrainNet:
        image, climate = self._encoders()
        return SSLPretrainNet(image, climate, float(self.mask_prob), float(self.jitter))

    # -- pre-training -----------------------------------------------------------------------------

    def _pretrain_params(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        return {k: params[k] for k in PRETRAIN_PARAMS}

    def pretrain_checkpoint_key(self, ds: xr.Dataset) -> str:
        """The folder under ``checkpoint_dir`` of the pre-training stage of a fit on ``ds``.

        ``SSLSoilNetPretrain-<16 hex digits>``: a sha256 of the unlabelled set (by content), the
        rows the leakage rule allows for ``ds`` (:func:`pretrain_rows`), the inputs used, the
        pre-training parameters (:data:`PRETRAIN_PARAMS`, the seed among them) and the training
        code. It does **not** depend on ``label_fraction``, on the labelled rows beyond their
        groups, or on any fine-tuning-only setting, so those fits share one pre-training.
        """
        if self.unlabelled is None:
            raise ValueError("no unlabelled set (unlabelled=None): nothing to pre-train on.")
        rows = pretrain_rows(self.unlabelled, ds)
        return self._stage_key(
            "SSLSoilNetPretrain",
            "pretrain",
            self._pretrain_params(),
            inputs=list(self._needs()),
            unlabelled=dataset_digest(self.unlabelled),
            rows=hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest(),
        )

    def _pretrain_config(self, folder: Path | None) -> TrainConfig:
        cfg = self._train_config(folder)
        cfg.epochs = int(self.pretrain_epochs)
        cfg.batch_size = int(self.pretrain_batch_size)
        cfg.learning_rate = float(self.pretrain_learning_rate)
        cfg.min_epochs = min(int(self.min_epochs), int(self.pretrain_epochs))
        return cfg

    def _run_pretraining(self, unl: xr.Dataset, arrays: dict[str, np.ndarray], key: str) -> None:
        """Pre-train (or restore) the encoders on the allowed unlabelled rows ``unl`` (their
        standardised ``arrays``); sets ``pretrain_module_``, ``pretrained_state_``,
        ``pretrain_history_``, ``pretrain_inner_split_``, ``pretrain_restored_``."""
        split = inner_validation_split(unl, float(self.val_fraction), int(self.seed))
        self.pretrain_inner_split_ = split
        set_seed(int(self.seed))
        net = self._build_pretrain_module()
        folder = self._stage_folder(key, "pre-training's checkpoint folder")
        self.pretrain_checkpoint_path_ = folder
        cached = _PRETRAIN_CACHE.get(key) if folder is None else None
        if cached is not None:
            _PRETRAIN_CACHE.move_to_end(key)
            net.load_state_dict(cached["state"])
            history = copy.deepcopy(cached["history"])
            history.resumed_from = len(history.epoch)
            self.pretrain_restored_ = True
        else:
            history = self._train_stage(
                "pretrain",
                self._pretrain_params(),
                net,
                [torch.from_numpy(a) for a in arrays.values()],
                None,
                split,
                self._pretrain_config(folder),
                task=ContrastiveTask(float(self.temperature), self.contrastive_loss),
                inputs=list(self.input_names_),
            )
            self.pretrain_restored_ = history.resumed_from >= len(history.epoch) > 0
            if folder is None:
                _PRETRAIN_CACHE[key] = {
                    "state": _cpu_state(net),
                    "history": copy.deepcopy(history),
                }
                while len(_PRETRAIN_CACHE) > _PRETRAIN_CACHE_SIZE:
                    _PRETRAIN_CACHE.popitem(last=False)
        net.eval()
        self.pretrain_module_ = net.to(self.device_)
        self.pretrain_history_ = history
        self.pretrained_state_ = _cpu_state(net)

    # -- fitting ----------------------------------------------------------------------------------

    def fit(self, ds: xr.Dataset, y: Any = None) -> SSLSoilNetRegressor:
        """Fit on the labelled samples ``ds`` (the training fold): checks; the label subset;
        input statistics (pre-training rows, else training rows); pre-training on the allowed
        unlabelled rows (or its restored checkpoint); fine-tuning of the whole network from the
        pre-trained encoders (or from random weights / ``init_weights`` with
        ``pretrain="none"``). With ``checkpoint_dir`` set, the fine-tuning checkpoints under
        ``checkpoint_dir / checkpoint_key(ds, y)`` and the pre-training under
        ``checkpoint_dir / pretrain_checkpoint_key(ds)``."""
        self._check_params()
        validate_samples(ds)
        self._check_data(ds)  # cheap checks before data are hashed or arrays built
        config, y_raw = self._start_fit(ds, y)
        self._setup_inputs(ds)
        self.pretrain_module_ = None
        self.pretrained_state_ = None
        self.pretrain_history_ = None
        self.pretrain_inner_split_ = None
        self.pretrain_checkpoint_path_ = None
        self.pretrain_restored_ = False
        self.pretrain_rows_ = np.array([], dtype=int)
        from soilbook.evaluate import label_subset

        self.label_rows_ = label_subset(ds.sizes[SAMPLE], float(self.label_fraction), self.seed)
        ds_lab = ds.isel({SAMPLE: self.label_rows_})
        y_lab = y_raw[self.label_rows_]
        raw = self._arrays(ds_lab)
        if self.unlabelled is not None:
            self.pretrain_rows_ = pretrain_rows(self.unlabelled, ds)
            unl = self.unlabelled.isel({SAMPLE: self.pretrain_rows_})
            raw_unl = self._arrays(unl)
            self._fit_input_stats(raw_unl)
        else:
            self._fit_input_stats(raw)
        if self._pretraining:
            key = self.pretrain_checkpoint_key(ds)
            self._run_pretraining(unl, self._standardise(raw_unl, warn=True), key)
            del raw_unl
        arrays = self._standardise(raw, warn=True)
        y_std = self._fit_target_scale(y_lab)
        split = self._inner_split(ds_lab)
        set_seed(int(self.seed))
        self.module_ = self._build_module(ds_lab, arrays)
        if self.pretrained_state_ is not None:
            self.init_weights_loaded_ = load_weights(
                self.module_, self.pretrained_state_, what="the pre-trained encoders"
            )
        else:
            self._apply_init_weights(self.module_)
        tensors = [torch.from_numpy(a) for a in arrays.values()]
        self.history_: History = self._train(
            self.module_,
            tensors,
            torch.from_numpy(y_std),
            split,
            config,
            {**self._run_key(), "stage": "finetune"},
        )
        self.module_.eval()
        return self

    def _run_key(self) -> dict[str, Any]:
        key = super()._run_key()
        data = self.unlabelled
        key["params"]["unlabelled"] = None if data is None else repr(dict(data.sizes))
        if self.pretrained_state_ is not None:
            key["pretrained"] = _base.weights_digest(self.pretrained_state_)
        return key

    # -- results ----------------------------------------------------------------------------------

    def training_histories(self) -> dict[str, History]:
        """``{"pretrain": pretrain_history_, "finetune": history_}``, or ``{"finetune": ...}``
        without pre-training. A pre-training restored from a checkpoint (or memory) gives its
        stored history (``resumed_from`` = its epochs). Raises NotFittedError before fit."""
        check_is_fitted(self, "history_")
        out: dict[str, History] = {}
        if self.pretrain_history_ is not None:
            out["pretrain"] = self.pretrain_history_
        out["finetune"] = self.history_
        return out

    def held_out_stage_scores(self) -> dict[str, dict[str, float]]:
        """The pre-training's skill on its inner validation rows (unlabelled locations it did
        not train on), at its best epoch, for :func:`soilbook.evaluate.cross_validate`:
        ``{"pretrain": {"loss", "top1", "top5", "n", "batch"}}`` — the contrastive loss, the
        positive's retrieval top-1/top-5 among ``batch`` candidates, and the rows scored. Empty
        without pre-training or without a validation set (fixed schedule)."""
        check_is_fitted(self, "history_")
        h = self.pretrain_history_
        if h is None or h.fixed_schedule or not h.epoch or h.best_epoch < 1:
            return {}
        i = h.epoch.index(h.best_epoch)
        out = {"loss": float(h.val_loss[i]), "n": float(h.n_val)}
        for k in ("top1", "top5"):
            values = h.metrics.get(f"val_{k}")
            if values is not None and len(values) > i:
                out[k] = float(values[i])
        out["batch"] = float(min(int(self.pretrain_batch_size), h.n_val))
        return {"pretrain": out}

    @torch.no_grad()
    def embed(self, ds: xr.Dataset, which: str = "climate", stage: str = "auto") -> np.ndarray:
        """The ``embed_dim``-d embeddings (n, embed_dim) float32 of ``ds``'s samples by one
        encoder: ``which`` ``"climate"`` or ``"image"``; ``stage`` ``"pretrained"`` (the
        encoders after pre-training), ``"finetuned"`` (after fine-tuning) or ``"auto"`` (the
        pre-trained ones when pre-training ran, else the fine-tuned ones)."""
        check_is_fitted(self, "module_")
        if which not in ("climate", "image"):
            raise ParameterError(f"which={which!r}; allowed: 'climate', 'image'.")
        if stage not in ("auto", "pretrained", "finetuned"):
            raise ParameterError(f"stage={stage!r}; allowed: 'auto', 'pretrained', 'finetuned'.")
        if stage == "auto":
            stage = "pretrained" if self.pretrain_module_ is not None else "finetuned"
        if stage == "pretrained" and self.pretrain_module_ is None:
            raise ValueError("no pre-training ran (pretrain='none'); use stage='finetuned'.")
        source = self.pretrain_module_ if stage == "pretrained" else self.module_
        encoder = source.image if which == "image" else source.climate
        if encoder is None:
            raise ParameterError(
                f"which={which!r}, but this model has no {which} encoder (modalities="
                f"{self.modalities!r})."
            )
        name = "patches" if which == "image" else "climate"
        self._check_predict_ds(ds)
        arr = self._standardise(self._arrays(ds))[name]
        encoder = encoder.to(self.device_).eval()
        bs = self._predict_batch_size()
        parts = [
            encoder(torch.from_numpy(arr[s : s + bs]).to(self.device_)).float().cpu().numpy()
            for s in range(0, arr.shape[0], bs)
        ]
        if not parts:
            return np.empty((0, int(self.embed_dim)), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
