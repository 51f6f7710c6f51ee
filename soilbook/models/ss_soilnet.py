"""SS-SoilNet (Zhang et al. 2026): spectral sequence convolution, spatial attention and
multi-head cross-attention fusion for soil salinity.

The paper describes three parts but publishes no code, widths or training details; everything
marked *(inferred)* below is this book's choice, made to be faithful to the description, small
enough for a laptop, and exactly computable over a whole scene (see :meth:`predict_scene`).

Inputs (a schema sample set, :mod:`soilbook.data.schema`)
---------------------------------------------------------
``reflectance`` (sample, date, band)
    the sample pixel's spectra at every acquisition → **band tokens**.
``covariates`` (sample, feature) with ``feature_group`` "spectral" or "vegetation"
    spectral and vegetation indices (NDVI, salinity indices, crop variables …) → **index tokens**.
``patches`` (sample, layer, y, x)
    windows of environmental layers around the sample (the paper uses 65 × 65) → **spatial
    queries**. Without patches (point data such as LimeSoDa or the UCRB pedons), the
    non-spectral covariates (terrain, hydrology, soil, climate, other) become a 1 × 1 "patch".

Architecture
------------
1. *Spectral sequence convolution.* The reflectance (date, band) of a pixel is read as a
   sequence over **bands** with the **dates as channels**; two 1-D convolutions (kernel 3,
   padding 1, GELU) give one token of size ``width`` per band, plus a learned band embedding
   *(inferred: the paper says "1-D convolutions along the spectral sequence")*. Every index
   covariate *i* with value *v* becomes a token ``v·w_i + e_i`` (the FT-Transformer feature
   tokenizer; *inferred*). Keys/values = [band tokens ; index tokens], layer-normalised.
2. *Spatial attention module.* The patch (layer, P, P) passes two **valid** 3 × 3 convolutions
   (GELU) → features f (width, P−4, P−4). ``n_queries`` spatial-attention maps
   (a 1 × 1 convolution of f plus a learned position-bias table per map) are softmax-normalised
   over the window, and each pools f into one **query token** (plus a learned query embedding)
   *(inferred: the paper says "2-D convolutions with spatial attention")*. For windows P < 5
   the convolutions are 1 × 1 (so P = 1 point data attend trivially to their one pixel).
3. *Multi-head cross-attention fusion.* Queries = the spatial tokens, keys/values = the
   spectral and index tokens (``heads`` heads), then residual + LayerNorm + feed-forward
   (residual + LayerNorm), the query tokens are averaged and an MLP head gives one value.

Ablations (``fusion``)
----------------------
``"cross_attention"``  the full model;
``"concat"``           mean of the spectral/index tokens ‖ mean of the spatial tokens → MLP
                       (both branches, no cross-attention);
``"spectral_only"``    no spatial branch: mean of the spectral/index tokens → MLP.

Training *(inferred)*: MSE on the standardised target, AdamW, cosine schedule, early stopping on
a grouped inner validation split — see :class:`soilbook.models.base.NetworkRegressor`.

Whole-scene maps
----------------
Because the spatial branch uses valid convolutions and a fixed-size position-biased softmax
pooling, the query tokens of *every* pixel can be computed at once: the convolutions run once
over the padded scene, and each pixel's attention pooling is a ratio of two correlations —
``Σ exp(a+b)·f / Σ exp(a+b)`` over its window = ``corr(exp(a)·f, exp(b)) / corr(exp(a), exp(b))``
— evaluated directly for small windows and with FFTs for large ones (float32 or float64, chosen
by the spread of the attention logits so that no window loses precision).
:meth:`SSSoilNetRegressor.predict_scene` agrees with patch-by-patch :meth:`predict` to rounding.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from soilbook.data.schema import SAMPLE, SchemaError, validate_scene
from soilbook.errors import ParameterError
from soilbook.models.base import NetworkRegressor, select_names

__all__ = ["FUSIONS", "INDEX_GROUPS", "SSSoilNet", "SSSoilNetRegressor", "missing_inputs"]

#: The fusion variants: the full model and the two ablations.
FUSIONS = ("cross_attention", "concat", "spectral_only")
#: Covariate groups that become key/value (index) tokens; the others feed the spatial branch.
INDEX_GROUPS = ("spectral", "vegetation")
#: Windows at least this wide use 3 × 3 convolutions; narrower ones 1 × 1.
MIN_CONV_WINDOW = 5
#: Pooling windows wider than this use FFT correlation in predict_scene (when fft=None).
FFT_MIN_WINDOW = 16


def missing_inputs(ds: xr.Dataset, fusion: str = "cross_attention") -> str | None:
    """Why :class:`SSSoilNetRegressor` with ``fusion`` cannot be trained on ``ds`` as asked, or
    None when it can (cheap: reads names and groups only, no values).

    SS-SoilNet needs **spectral inputs**: ``reflectance`` (sample, date, band) and/or covariates
    whose ``feature_group`` is in :data:`INDEX_GROUPS` (``spectral``, ``vegetation``) — a table
    of lab properties alone has none, and every variant is refused. ``"cross_attention"`` and
    ``"concat"`` also need a spatial input — ``patches`` or, for point data, covariates in any
    other group (a 1 × 1 "patch"); without one they would train the spectral-only variant
    instead (``fusion_``), so the reason says that.
    """
    if fusion not in FUSIONS:
        raise ParameterError(f"fusion={fusion!r}; allowed: {list(FUSIONS)}.")
    groups: list[str] = []
    if "covariates" in ds.data_vars and "feature_group" in ds.coords:
        groups = [str(g) for g in ds["feature_group"].values]
    has_refl = "reflectance" in ds.data_vars and ds.sizes.get("band", 0) > 0
    if not has_refl and not any(g in INDEX_GROUPS for g in groups):
        return (
            "no spectral inputs: SS-SoilNet needs reflectance bands (B01..B12 / refl_<nm> "
            f"columns) or covariates in the groups {list(INDEX_GROUPS)} (e.g. 'spectral:ndsi', "
            "'vegetation:ndvi'); the data have "
            + (f"only covariates in {sorted(set(groups))}" if groups else "no covariates")
        )
    if fusion == "spectral_only" or "patches" in ds.data_vars:
        return None
    if not any(g not in INDEX_GROUPS for g in groups):
        return (
            "no spatial input: no patches and no covariates outside "
            f"{list(INDEX_GROUPS)} for the spatial branch, so fusion={fusion!r} would train the "
            "spectral-only variant"
        )
    return None


class SSSoilNet(nn.Module):
    """The SS-SoilNet network (see the module docstring).

    ``forward(*inputs)`` takes, in this order and only those that exist (``input_names``):
    ``spectra`` (n, n_dates, n_bands), ``index`` (n, n_index) and ``spatial``
    (n, n_spatial, window, window), all standardised; it returns (n,) standardised predictions.
    """

    def __init__(
        self,
        *,
        n_dates: int,
        n_bands: int,
        n_index: int,
        n_spatial: int,
        window: int,
        width: int = 32,
        heads: int = 4,
        n_queries: int = 4,
        fusion: str = "cross_attention",
        dropout: float = 0.1,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ParameterError(f"fusion={fusion!r}; allowed: {list(FUSIONS)}.")
        if n_bands + n_index == 0:
            raise ValueError("SS-SoilNet needs spectral inputs (bands or index covariates).")
        self.fusion = fusion
        self.width = width
        self.n_queries = n_queries
        names = []
        if n_bands:
            names.append("spectra")
        if n_index:
            names.append("index")
        self.use_spatial = fusion != "spectral_only"
        if self.use_spatial:
            if n_spatial < 1 or window < 1:
                raise ValueError(
                    f"fusion={fusion!r} needs a spatial input (patches or covariates)."
                )
            names.append("spatial")
        self.input_names = tuple(names)

        self._build_tokenizer(n_dates, n_bands, n_index, width, dropout)  # 1.
        self._build_spatial(n_spatial, window, width, n_queries)  # 2.
        self._build_fusion(fusion, width, heads, dropout)  # 3.

    def _build_tokenizer(
        self, n_dates: int, n_bands: int, n_index: int, width: int, dropout: float
    ) -> None:
        """1. The spectral sequence convolution (dates as channels, one token per band, plus a
        band embedding) and the index-covariate tokenizer (``v·w_i + e_i``)."""
        if n_bands:
            self.spectral_conv = nn.Sequential(
                nn.Conv1d(n_dates, width, 3, padding=1),
                nn.GELU(),
                nn.Conv1d(width, width, 3, padding=1),
                nn.GELU(),
            )
            self.band_embed = nn.Parameter(torch.randn(n_bands, width) * 0.02)
        if n_index:
            bound = 1.0 / math.sqrt(width)
            self.index_weight = nn.Parameter(torch.empty(n_index, width).uniform_(-bound, bound))
            self.index_bias = nn.Parameter(torch.empty(n_index, width).uniform_(-bound, bound))
        self.token_norm = nn.LayerNorm(width)
        self.token_drop = nn.Dropout(dropout)

    def _build_spatial(self, n_spatial: int, window: int, width: int, n_queries: int) -> None:
        """2. The spatial attention module: two valid convolutions (3 × 3, or 1 × 1 for
        windows under ``MIN_CONV_WINDOW``), attention logits, position biases, query embeddings."""
        self.window = window
        self.kernel = 3 if window >= MIN_CONV_WINDOW else 1
        self.pool_window = window - 2 * (self.kernel - 1)
        if not self.use_spatial:
            return
        k = self.kernel
        self.spatial_conv = nn.Sequential(
            nn.Conv2d(n_spatial, width, k),
            nn.GELU(),
            nn.Conv2d(width, width, k),
            nn.GELU(),
        )
        self.attention_logits = nn.Conv2d(width, n_queries, 1)
        s = self.pool_window
        self.position_bias = nn.Parameter(torch.zeros(n_queries, s, s))
        self.query_embed = nn.Parameter(torch.randn(n_queries, width) * 0.02)

    def _build_fusion(self, fusion: str, width: int, heads: int, dropout: float) -> None:
        """3. The fusion (cross-attention block, concatenation or none) and the MLP head."""
        if fusion == "cross_attention":
            if width % heads:
                raise ParameterError(f"width={width} must be divisible by heads={heads}.")
            self.cross_attention = nn.MultiheadAttention(
                width, heads, dropout=dropout, batch_first=True
            )
            self.norm1 = nn.LayerNorm(width)
            self.ffn = nn.Sequential(
                nn.Linear(width, 2 * width),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(2 * width, width),
            )
            self.norm2 = nn.LayerNorm(width)
            head_in = width
        elif fusion == "concat":
            head_in = 2 * width
        else:
            head_in = width
        self.head = nn.Sequential(
            nn.Linear(head_in, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, 1)
        )

    # -- branches --------------------------------------------------------------------------------

    def tokens(self, spectra: Tensor | None, index: Tensor | None) -> Tensor:
        """Key/value tokens (n, n_bands + n_index, width)."""
        parts = []
        if spectra is not None:
            h = self.spectral_conv(spectra)  # (n, width, n_bands)
            parts.append(h.transpose(1, 2) + self.band_embed)
        if index is not None:
            parts.append(index[:, :, None] * self.index_weight + self.index_bias)
        return self.token_drop(self.token_norm(torch.cat(parts, dim=1)))

    def spatial_features(self, x: Tensor) -> Tensor:
        """Valid convolutions: (n, layers, H, W) → (n, width, H − 2(k−1), W − 2(k−1))."""
        return self.spatial_conv(x)

    def pool(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Spatial-attention pooling of window features (n, width, S, S).

        Returns the pooled features (n, n_queries, width) — without the query embedding — and
        the attention maps (n, n_queries, S, S), each summing to 1.
        """
        n, c, s, _ = features.shape
        logits = self.attention_logits(features) + self.position_bias  # (n, M, S, S)
        alpha = torch.softmax(logits.reshape(n, self.n_queries, s * s), dim=-1)
        pooled = torch.einsum("nmp,ncp->nmc", alpha, features.reshape(n, c, s * s))
        return pooled, alpha.reshape(n, self.n_queries, s, s)

    def fuse(
        self, kv: Tensor, pooled: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Fusion and head: (n,) predictions and, if asked, head-averaged weights (n, M, T)."""
        weights = None
        if self.fusion == "cross_attention":
            q = pooled + self.query_embed
            att, weights = self.cross_attention(
                q, kv, kv, need_weights=need_weights, average_attn_weights=True
            )
            x = self.norm1(q + att)
            x = self.norm2(x + self.ffn(x))
            z = x.mean(dim=1)
        elif self.fusion == "concat":
            z = torch.cat([kv.mean(dim=1), (pooled + self.query_embed).mean(dim=1)], dim=1)
        else:
            z = kv.mean(dim=1)
        return self.head(z).squeeze(-1), weights

    def split_inputs(self, inputs: tuple[Tensor, ...]) -> dict[str, Tensor]:
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"SSSoilNet expects {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}."
            )
        return dict(zip(self.input_names, inputs, strict=True))

    def forward(self, *inputs: Tensor) -> Tensor:
        x = self.split_inputs(inputs)
        kv = self.tokens(x.get("spectra"), x.get("index"))
        pooled = self.pool(self.spatial_features(x["spatial"]))[0] if self.use_spatial else None
        return self.fuse(kv, pooled)[0]

    def explain_forward(self, *inputs: Tensor) -> dict[str, Tensor | None]:
        """Predictions, cross-attention weights (n, M, T) and spatial attention (n, M, S, S)."""
        x = self.split_inputs(inputs)
        kv = self.tokens(x.get("spectra"), x.get("index"))
        pooled = alpha = None
        if self.use_spatial:
            pooled, alpha = self.pool(self.spatial_features(x["spatial"]))
        pred, weights = self.fuse(kv, pooled, need_weights=True)
        return {"prediction": pred, "cross_attention": weights, "spatial_attention": alpha}


class SSSoilNetRegressor(NetworkRegressor):
    """SS-SoilNet as a scikit-learn regressor on schema sample sets.

    Parameters
    ----------
    fusion : ``"cross_attention"`` (the paper's model), ``"concat"`` or ``"spectral_only"``
        (ablations, see the module docstring).
    width : channels of every convolution and the attention dimension (paper: not published;
        the book uses 32 in the quick profile and 64 in the full one).
    heads : cross-attention heads (must divide ``width``).
    n_queries : spatial-attention maps = query tokens.
    dropout : dropout in the token, attention, feed-forward and head layers.
    **kwargs : the training settings of :class:`~soilbook.models.base.NetworkRegressor`
        (epochs, batch_size, learning_rate, weight_decay, patience, loss, val_fraction,
        max_grad_norm, seed, device, checkpoint_dir, progress, cpu_threads).

    Attributes
    ----------
    (after fit, besides the base class's)

    fusion_ : the fusion actually used (``"spectral_only"`` when there is no spatial input).
    bands_, dates_ : reflectance bands and dates used (empty without reflectance).
    index_features_, index_groups_ : covariates used as index tokens and their groups.
    spatial_mode_ : ``"patches"``, ``"pixels"`` (point data: 1 × 1 patches of covariates) or
        ``None`` (spectral only).
    spatial_names_, spatial_groups_ : the layers (or covariates) of the spatial branch.
    window_ : the patch side P in pixels (1 for point data).
    token_names_, token_groups_ : names and groups of the key/value tokens.
    """

    def __init__(
        self,
        *,
        fusion: str = "cross_attention",
        width: int = 32,
        heads: int = 4,
        n_queries: int = 4,
        dropout: float = 0.1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.fusion = fusion
        self.width = width
        self.heads = heads
        self.n_queries = n_queries
        self.dropout = dropout

    # -- hooks -----------------------------------------------------------------------------------

    def _check_params(self) -> None:
        super()._check_params()
        if self.fusion not in FUSIONS:
            raise ParameterError(
                f"fusion={self.fusion!r} is not allowed; allowed: {list(FUSIONS)}."
            )
        for name in ("width", "heads", "n_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ParameterError(f"SSSoilNetRegressor: {name}={value!r} must be an int >= 1.")
        if self.fusion == "cross_attention" and self.width % self.heads:
            raise ParameterError(
                f"width={self.width} must be divisible by heads={self.heads} (each head gets "
                f"width/heads channels); e.g. width={self.heads * max(1, round(self.width / self.heads))}."
            )
        if not 0 <= float(self.dropout) < 1:
            raise ParameterError(f"dropout={self.dropout!r} must be in [0, 1).")

    def _setup_inputs(self, ds: xr.Dataset) -> None:
        has_refl = "reflectance" in ds.data_vars
        self.bands_ = [str(b) for b in ds["band"].values] if has_refl else []
        self.dates_ = (
            [str(d) for d in ds["date"].values] if has_refl and "date" in ds.coords else []
        )
        self.n_dates_ = int(ds.sizes["date"]) if has_refl else 0
        feats: list[str] = []
        groups: list[str] = []
        if "covariates" in ds.data_vars:
            feats = [str(f) for f in ds["feature"].values]
            groups = [str(g) for g in ds["feature_group"].values]
        self.index_features_ = [f for f, g in zip(feats, groups, strict=True) if g in INDEX_GROUPS]
        self.index_groups_ = [g for g in groups if g in INDEX_GROUPS]
        if not self.bands_ and not self.index_features_:
            raise SchemaError(
                "SS-SoilNet found no spectral inputs. Expected: 'reflectance' (sample, date, band) "
                f"and/or covariates whose feature_group is one of {list(INDEX_GROUPS)}. What to do: "
                "add reflectance or spectral/vegetation indices, or use a baseline."
            )
        self.token_names_ = [*self.bands_, *self.index_features_]
        self.token_groups_ = ["spectral"] * len(self.bands_) + self.index_groups_

        self.fusion_ = self.fusion
        self.spatial_mode_: str | None = None
        self.spatial_names_: list[str] = []
        self.spatial_groups_: list[str] = []
        self.window_ = 1
        if self.fusion == "spectral_only":
            return
        if "patches" in ds.data_vars:
            self.spatial_mode_ = "patches"
            self.spatial_names_ = [str(v) for v in ds["layer"].values]
            self.spatial_groups_ = [str(g) for g in ds["layer_group"].values]
            if ds.sizes["y"] != ds.sizes["x"]:
                raise SchemaError(
                    f"patches are {ds.sizes['y']} × {ds.sizes['x']}; SS-SoilNet needs square windows."
                )
            self.window_ = int(ds.sizes["y"])
            unused = [
                f
                for f, g in zip(feats, groups, strict=True)
                if g not in INDEX_GROUPS and f not in self.spatial_names_
            ]
            if unused:
                warnings.warn(
                    f"SS-SoilNet: the covariate(s) {unused[:6]}{' …' if len(unused) > 6 else ''} are "
                    "neither spectral/vegetation indices nor patch layers, so the network does not "
                    "use them (the spatial branch sees the environment through the patches).",
                    stacklevel=3,
                )
            return
        context = [(f, g) for f, g in zip(feats, groups, strict=True) if g not in INDEX_GROUPS]
        if context:
            self.spatial_mode_ = "pixels"
            self.spatial_names_ = [f for f, _ in context]
            self.spatial_groups_ = [g for _, g in context]
            return
        warnings.warn(
            f"SS-SoilNet (fusion={self.fusion!r}): the data have no patches and no non-spectral "
            "covariates, so there is nothing for the spatial branch; training the spectral-only "
            "variant instead (fusion_='spectral_only').",
            stacklevel=3,
        )
        self.fusion_ = "spectral_only"

    def _select_dates(self, da: xr.DataArray, what: str) -> xr.DataArray:
        if "date" not in da.coords or not self.dates_:
            if da.sizes["date"] != self.n_dates_:
                raise SchemaError(
                    f"{what} has {da.sizes['date']} dates; the model was trained on {self.n_dates_}."
                )
            return da
        return select_names(da, "date", self.dates_, what)

    def _arrays(self, ds: xr.Dataset) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.bands_:
            if "reflectance" not in ds.data_vars:
                raise SchemaError(
                    "the samples have no 'reflectance'; the model was trained with it."
                )
            refl = select_names(ds["reflectance"], "band", self.bands_, "the samples' reflectance")
            refl = self._select_dates(refl, "the samples' reflectance")
            out["spectra"] = refl.transpose(SAMPLE, "date", "band").values.astype(np.float32)
        need_cov = self.index_features_ or self.spatial_mode_ == "pixels"
        if need_cov and "covariates" not in ds.data_vars:
            raise SchemaError("the samples have no 'covariates'; the model was trained with them.")
        if self.index_features_:
            cov = select_names(
                ds["covariates"], "feature", self.index_features_, "the samples' covariates"
            )
            out["index"] = cov.transpose(SAMPLE, "feature").values.astype(np.float32)
        if self.spatial_mode_ == "patches":
            if "patches" not in ds.data_vars:
                raise SchemaError("the samples have no 'patches'; the model was trained with them.")
            patches = select_names(
                ds["patches"], "layer", self.spatial_names_, "the samples' patches"
            )
            if patches.sizes["y"] != self.window_ or patches.sizes["x"] != self.window_:
                raise SchemaError(
                    f"patches are {patches.sizes['y']} × {patches.sizes['x']} px; the model was trained "
                    f"on {self.window_} × {self.window_}. What to do: extract patches with window={self.window_}."
                )
            out["spatial"] = patches.transpose(SAMPLE, "layer", "y", "x").values.astype(np.float32)
        elif self.spatial_mode_ == "pixels":
            cov = select_names(
                ds["covariates"], "feature", self.spatial_names_, "the samples' covariates"
            )
            out["spatial"] = cov.transpose(SAMPLE, "feature").values.astype(np.float32)[
                :, :, None, None
            ]
        return out

    def _input_groups(self) -> dict[str, Any]:
        return {
            "spectra": "spectral",
            "index": list(self.index_groups_),
            "spatial": list(self.spatial_groups_),
        }

    def _build_module(self, ds: xr.Dataset, arrays: dict[str, np.ndarray]) -> SSSoilNet:
        return SSSoilNet(
            n_dates=self.n_dates_,
            n_bands=len(self.bands_),
            n_index=len(self.index_features_),
            n_spatial=len(self.spatial_names_),
            window=self.window_,
            width=int(self.width),
            heads=int(self.heads),
            n_queries=int(self.n_queries),
            fusion=self.fusion_,
            dropout=float(self.dropout),
        )

    def _predict_batch_size(self) -> int:
        per_sample = max(1, int(self.width) * self.window_ * self.window_ * 4)
        return int(max(16, min(4096, 2**27 // per_sample)))

    # -- interpretation --------------------------------------------------------------------------

    @torch.no_grad()
    def _explain(self, ds: xr.Dataset) -> dict[str, np.ndarray | None]:
        tensors = self.to_tensors(ds)
        module = self.module_.to(self.device_).eval()
        bs = self._predict_batch_size()
        parts: dict[str, list[np.ndarray]] = {"cross_attention": [], "spatial_attention": []}
        for start in range(0, tensors[0].shape[0], bs):
            out = module.explain_forward(*[t[start : start + bs].to(self.device_) for t in tensors])
            for key in parts:
                if out[key] is not None:
                    parts[key].append(out[key].float().cpu().numpy())
        return {k: (np.concatenate(v) if v else None) for k, v in parts.items()}

    def _samples_coord(self, ds: xr.Dataset) -> dict[str, Any]:
        return {SAMPLE: ds[SAMPLE].values} if SAMPLE in ds.coords else {}

    def attention_weights(self, ds: xr.Dataset) -> xr.DataArray:
        """Head-averaged cross-attention weights (sample, query, token); each query's weights
        over the tokens sum to 1. Tokens are the band names then the index covariates, with a
        ``token_group`` coordinate (their feature groups)."""
        check_is_fitted(self, "module_")
        if self.fusion_ != "cross_attention":
            raise ValueError(
                f"attention_weights needs fusion='cross_attention'; this model uses {self.fusion_!r}, "
                "which has no cross-attention."
            )
        weights = self._explain(ds)["cross_attention"]
        return xr.DataArray(
            weights,
            dims=(SAMPLE, "query", "token"),
            coords={
                **self._samples_coord(ds),
                "query": [f"query {m}" for m in range(int(self.n_queries))],
                "token": list(self.token_names_),
                "token_group": ("token", list(self.token_groups_)),
            },
            name="attention",
            attrs={"units": "1", "long_name": "cross-attention weight (mean over heads)"},
        )

    def spatial_attention(self, ds: xr.Dataset) -> xr.DataArray:
        """Spatial-attention maps (sample, query, y, x) over the pooled window (P − 4 pixels wide
        for 3 × 3 convolutions); ``y`` / ``x`` are pixel offsets from the sample; each map sums
        to 1."""
        check_is_fitted(self, "module_")
        if self.fusion_ == "spectral_only":
            raise ValueError("spatial_attention: the spectral-only model has no spatial branch.")
        alpha = self._explain(ds)["spatial_attention"]
        s = alpha.shape[-1]
        offsets = np.arange(s) - s // 2
        return xr.DataArray(
            alpha,
            dims=(SAMPLE, "query", "y", "x"),
            coords={
                **self._samples_coord(ds),
                "query": [f"query {m}" for m in range(int(self.n_queries))],
                "y": offsets,
                "x": offsets,
            },
            name="spatial_attention",
            attrs={"units": "1", "long_name": "spatial-attention weight", "pixel_offsets": "y, x"},
        )

    # -- whole-scene prediction ------------------------------------------------------------------

    @torch.inference_mode()
    def predict_scene(
        self,
        scene: xr.Dataset,
        batch_pixels: int | None = None,
        tile: int = 512,
        fft: bool | None = None,
    ) -> np.ndarray:
        """Predict every pixel of ``scene``: ndarray (y, x) float64, in the target's unit.

        Equivalent to extracting each pixel's window (``soilbook.data.scene``) and calling
        :meth:`predict`, but each convolution runs once per pixel instead of once per window
        position: the scene is processed in tiles of ``tile`` × ``tile`` output pixels (plus a
        halo of window − 1), the spatial-attention pooling of all pixels is computed as a ratio of
        correlations (see the module docstring and :func:`window_attention_pool`; by FFT for
        pooling windows of at least ``FFT_MIN_WINDOW`` pixels unless ``fft`` says otherwise), and
        the tokens, cross-attention and head run on ``batch_pixels`` pixels at a time (default
        2048 on a CPU, 65536 on a GPU).
        """
        check_is_fitted(self, "module_")
        validate_scene(scene)
        module: SSSoilNet = self.module_.to(self.device_).eval()
        if batch_pixels is None:  # small batches stay in the CPU caches; GPUs like big ones
            batch_pixels = 2048 if self.device_.type == "cpu" else 65536
        if batch_pixels < 1 or tile < 1:
            raise ParameterError("batch_pixels and tile must be >= 1.")
        if self.spatial_mode_ == "patches" and self.window_ % 2 == 0:
            raise ValueError(
                f"predict_scene needs an odd window; the model was trained on {self.window_}."
            )
        inputs = self._scene_inputs(scene)
        use_fft = (module.pool_window >= FFT_MIN_WINDOW) if fft is None else bool(fft)
        if use_fft and module.use_spatial:
            # tiles whose feature maps have a fast FFT length need no zero padding
            s_1 = module.pool_window - 1
            tile = max(1, _fast_len(tile + s_1) - s_1)
        height, width_px = int(scene.sizes["y"]), int(scene.sizes["x"])
        out = np.empty((height, width_px), dtype=np.float64)
        for r0 in range(0, height, tile):
            h = min(tile, height - r0)
            for c0 in range(0, width_px, tile):
                w = min(tile, width_px - c0)
                out[r0 : r0 + h, c0 : c0 + w] = self._predict_tile(
                    module, inputs, (r0, c0, h, w), use_fft, batch_pixels
                )
        return out * self.target_scale_ + self.target_mean_

    def _scene_inputs(self, scene: xr.Dataset) -> dict[str, Any]:
        """The model's inputs over a whole scene, as :meth:`predict_scene` tiles them.

        ``spectra`` (date, band, y, x) and ``index`` (feature, y, x): raw float arrays or
        ``None``; ``spatial``: the standardised layers, padded by window // 2 the way patches
        are extracted ((layer, y + 2r, x + 2r) float32 tensor), the covariates of point data
        ((feature, y, x)), or ``None`` (spectral only).
        """
        from soilbook.data import scene as scene_mod

        spectra = None
        if self.bands_:
            refl = select_names(
                scene["reflectance"], "band", self.bands_, "the scene's reflectance"
            )
            refl = self._select_dates(refl, "the scene's reflectance")
            spectra = refl.transpose("date", "band", "y", "x").values  # (D, B, H, W)
        index = context = None
        if self.index_features_ or self.spatial_mode_ == "pixels":
            cov = _as_feature_cube(scene_mod.scene_covariates(scene))
            if self.index_features_:
                index = select_names(
                    cov, "feature", self.index_features_, "the scene's covariates"
                ).values
            if self.spatial_mode_ == "pixels":
                context = select_names(
                    cov, "feature", self.spatial_names_, "the scene's covariates"
                ).values
        spatial = None
        if self.spatial_mode_ == "patches":
            layers = select_names(
                scene["layers"], "layer", self.spatial_names_, "the scene's layers"
            )
            raw = layers.transpose("layer", "y", "x").values.astype(np.float32)
            spatial = _pad_like_patches(scene_mod, raw, self.window_ // 2)
        elif self.spatial_mode_ == "pixels":
            spatial = context.astype(np.float32)
        if spatial is not None:
            mean, std = self.input_stats_["spatial"]
            spatial = (spatial - mean[0]) / std[0]
            spatial[~np.isfinite(spatial)] = 0.0
            spatial = torch.from_numpy(np.ascontiguousarray(spatial, dtype=np.float32))
        return {"spectra": spectra, "index": index, "spatial": spatial}

    def _standardise_pixels(self, name: str, arr: np.ndarray) -> Tensor:
        """Pixels (n, ...) of input ``name`` standardised with the training statistics."""
        mean, std = self.input_stats_[name]
        z = (arr.astype(np.float32) - mean) / std
        z[~np.isfinite(z)] = 0.0
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))

    def _predict_tile(
        self,
        module: SSSoilNet,
        inputs: dict[str, Any],
        box: tuple[int, int, int, int],
        use_fft: bool,
        batch_pixels: int,
    ) -> np.ndarray:
        """Standardised predictions (h, w) of the tile ``box = (row, col, h, w)``: the spatial
        branch over the tile plus its halo at once, then tokens, fusion and head in batches
        of ``batch_pixels`` pixels."""
        r0, c0, h, w = box
        n = h * w
        dev = self.device_
        spectra, index, spatial = inputs["spectra"], inputs["index"], inputs["spatial"]
        pooled = None
        if module.use_spatial:
            halo = self.window_ - 1 if spatial is not None else 0
            x = spatial[:, r0 : r0 + h + halo, c0 : c0 + w + halo].to(dev)
            f = module.spatial_features(x[None])[0]  # (C, h + S - 1, w + S - 1)
            logits = module.attention_logits(f[None])[0]  # (M, ., .)
            pooled = window_attention_pool(f, logits, module.position_bias, use_fft)
            pooled = pooled.permute(2, 3, 0, 1).reshape(n, module.n_queries, -1)
        spec_t = idx_t = None
        if spectra is not None:
            block = spectra[:, :, r0 : r0 + h, c0 : c0 + w]
            spec_t = self._standardise_pixels(
                "spectra", block.reshape(block.shape[0], block.shape[1], n).transpose(2, 0, 1)
            )
        if index is not None:
            block = index[:, r0 : r0 + h, c0 : c0 + w]
            idx_t = self._standardise_pixels("index", block.reshape(block.shape[0], n).T)
        preds = []
        for b0 in range(0, n, batch_pixels):
            sl = slice(b0, b0 + batch_pixels)
            kv = module.tokens(
                None if spec_t is None else spec_t[sl].to(dev),
                None if idx_t is None else idx_t[sl].to(dev),
            )
            pred, _ = module.fuse(kv, None if pooled is None else pooled[sl])
            preds.append(pred.float().cpu().numpy())
        return np.concatenate(preds).reshape(h, w)


# -- helpers for predict_scene -----------------------------------------------------------------


def _as_feature_cube(cov: Any) -> xr.DataArray:
    """scene_covariates' result as a DataArray (feature, y, x)."""
    if isinstance(cov, xr.Dataset):
        cov = cov["covariates"] if "covariates" in cov.data_vars else cov.to_dataarray("feature")
    return cov.transpose("feature", "y", "x")


def _pad_like_patches(scene_mod: Any, raw: np.ndarray, radius: int) -> np.ndarray:
    """Pad (layer, H, W) by ``radius`` the way soilbook.data.scene.extract_patches pads."""
    if radius == 0:
        return raw
    mode = getattr(scene_mod, "PAD_MODE", "reflect")
    kwargs = {}
    if mode == "constant":
        kwargs["constant_values"] = getattr(scene_mod, "PAD_VALUE", np.nan)
    return np.pad(raw, ((0, 0), (radius, radius), (radius, radius)), mode=mode, **kwargs)


def _fast_len(n: int) -> int:
    """The smallest 2^a·3^b·5^c ≥ n (fast FFT sizes)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _correlate_valid(x: Tensor, kernel: Tensor, use_fft: bool) -> Tensor:
    """Valid 2-D cross-correlation of every channel of ``x`` (C, H, W) with ``kernel`` (S, S).

    Direct (``F.conv2d``) or by FFT. The FFT path is a circular convolution with the flipped
    kernel at size (H, W) rounded up to a fast FFT length: outputs S−1 … H−1 of a circular
    convolution of size ≥ H never wrap around, so they are exactly the valid correlation.
    """
    s = kernel.shape[-1]
    c, hh, ww = x.shape
    if not use_fft or s == 1:
        return F.conv2d(x[:, None], kernel[None, None].to(x.dtype))[:, 0]
    nh, nw = _fast_len(hh), _fast_len(ww)
    kf = torch.fft.rfft2(torch.flip(kernel.to(x.dtype), dims=(0, 1)), s=(nh, nw))
    out = torch.empty((c, hh - s + 1, ww - s + 1), dtype=x.dtype, device=x.device)
    chunk = max(1, int(2**24 // (nh * nw)))
    for i in range(0, c, chunk):
        spec = torch.fft.rfft2(x[i : i + chunk], s=(nh, nw))
        spec *= kf
        out[i : i + chunk] = torch.fft.irfft2(spec, s=(nh, nw))[:, s - 1 : hh, s - 1 : ww]
    return out


#: Largest logit spread (nats, within a tile, logits + position bias) pooled with float32 FFTs;
#: FFT round-off is relative to the largest term, so the worst window's relative error is about
#: eps · exp(spread): 6e-8 · e^6 ≈ 2.4e-5 in float32, 1e-16 · e^30 ≈ 1e-3 … 1e-5 in float64.
_FFT32_MAX_SPREAD = 6.0
_FFT64_MAX_SPREAD = 30.0
#: Above this spread even direct float32 correlation could underflow; use float64.
_DIRECT32_MAX_SPREAD = 60.0


def window_attention_pool(
    features: Tensor, logits: Tensor, position_bias: Tensor, use_fft: bool = False
) -> Tensor:
    """Spatial-attention pooling of every S × S window of a feature map, all at once.

    ``features`` (C, H', W') and ``logits`` (M, H', W') are the valid-convolution features and
    the attention logits (without position bias) over a padded scene; ``position_bias``
    (M, S, S). For every output pixel (i, j) and map m it returns
    ``Σ_uv softmax(logits[m, i+u, j+v] + bias[m, u, v]) · features[:, i+u, j+v]`` — the same as
    :meth:`SSSoilNet.pool` on that pixel's window — as the ratio
    ``corr(exp(a)·f, exp(b)) / corr(exp(a), exp(b))`` with maxima subtracted for stability.
    Returns (M, C, H' − S + 1, W' − S + 1).

    Precision: direct correlation is exact to float32 rounding (float64 when the logits span
    more than 60 nats). The FFT path works in float32 when the logits (plus bias) of this block
    span at most 6 nats, in float64 up to 30 nats, and falls back to direct float64 correlation
    beyond, so no window's weights drown in the round-off of larger ones.
    """
    m_count, s = position_bias.shape[0], position_bias.shape[-1]
    c, hh, ww = features.shape
    out = torch.empty(
        (m_count, c, hh - s + 1, ww - s + 1), dtype=features.dtype, device=features.device
    )
    for m in range(m_count):
        a = logits[m]
        b = position_bias[m]
        spread = float(a.max() - a.min()) + float(b.max() - b.min())
        if use_fft and spread <= _FFT64_MAX_SPREAD:
            fft_here = True
            dtype = torch.float32 if spread <= _FFT32_MAX_SPREAD else torch.float64
        else:
            fft_here = False
            dtype = torch.float32 if spread <= _DIRECT32_MAX_SPREAD else torch.float64
        ex = torch.exp((a - a.max()).to(dtype))
        kernel = torch.exp((b - b.max()).to(dtype))
        # numerator channels and the denominator in one batch
        stacked = torch.cat([features.to(dtype) * ex, ex[None]], dim=0)
        corr = _correlate_valid(stacked, kernel, fft_here)
        out[m] = (corr[:c] / corr[c:]).to(features.dtype)
    return out
