"""DeepSalt (Dey et al., IEEE BigData 2025): lab-to-satellite spectral transfer for salinity.

A **teacher** network learns salinity from laboratory spectra (clean, many sites); a **student**
network predicts it from satellite pixels (noisy, mixed, few labelled sites) and, where the
satellite sample set carries them, from ancillary covariates (sand, clay, climate). The student
reads the satellite spectrum through a **Spectral Adaptation Unit (SAU)** that maps it onto the
lab wavelength grid and corrects its spectral shape, and it is trained with **knowledge
distillation**: at the *paired* sites (a satellite pixel and a lab spectrum of the same soil) the
student's intermediate features are pulled towards the frozen teacher's features of the lab
spectrum, layer by layer.

Everything marked *(inferred)* is this book's choice: the paper gives the components but not
every detail, and its official code has defects that we do **not** copy (see PAPERS.md):

* the official alignment autoencoders were trained but never used downstream — here the SAU is
  **really in the student's path** (:class:`SpectralAdaptationUnit`);
* the official distillation term was a KL divergence between softmaxes over a length-1 axis,
  i.e. identically zero, so the "distilled" student was trained on the target alone — here the
  distillation term is a layer-weighted feature MSE whose gradient reaches the student and the
  SAU (``tests/test_deepsalt.py`` checks the gradient and that training with ``beta > 0`` gives
  other weights than ``beta = 0``).

Departures from the paper and its official code
-----------------------------------------------
(:data:`DEPARTURES` holds the same list as text, for notebooks and reports.)

1. **No per-domain autoencoders: band-group tokens.** The official code compresses each domain
   with a sparse autoencoder (input → 1024 → 512 → 256 → 64, sigmoid output, KL sparsity) and
   feeds the 64-d code to the Transformers. Here the (standardised) spectrum on the lab grid is
   cut into ``n_tokens`` contiguous band groups, each linearly embedded as one token; there is
   no reconstruction pre-training.
2. **Alignment by the SAU, distillation and CORAL** instead of the official
   1.0 × reconstruction + 48 × (1 − cosine) loss between the autoencoder codes of paired
   samples: the SAU (fixed interpolation + learned band-wise gain/offset + smooth per-pixel
   shape correction, *inferred*: the paper does not specify it) is trained end to end with the
   student; the distillation is a layer-weighted feature MSE (weights 1.35, 1.05, 0.65 as in
   the official code); an optional CORAL term matches feature statistics on unlabelled pixels.
   The paper's "physically grounded constraints" appear only as the SAU's smooth basis,
   positive gain and identity prior — there is no separate physics loss.
3. **AdamW with a cosine schedule** (the book's training loop, :mod:`soilbook.train`) instead
   of Adam with ReduceLROnPlateau; the weight decay also shrinks the SAU towards identity.
4. **Student = teacher architecture.** The official student is a different Transformer
   (d = 72 on [64-d code ‖ 8 ancillary], 8 heads, 4 layers, FF 256); here both use the same
   encoder (``width``, ``depth``, ``heads``, FF = 2·width; official teacher: 64, 3, 4, 128) so
   that layer ``l`` of one aligns with layer ``l`` of the other.
5. **Ancillary covariates enter at the head**, concatenated to the token-averaged features,
   not as input channels of the Transformer; only the covariates the satellite sample set
   carries are used (``covariate_names_``), none are invented.
6. **Linear output on a standardised target** instead of the official 0.05 + 76.95·sigmoid
   (dS/m) output; with ``lab_target_transform="log1p"`` (set automatically by
   :class:`soilbook.evaluate.Log1pTarget`) teacher and student learn log1p(target).
7. **Pairing by site id.** A satellite pixel is paired with the lab spectra of the same
   ``site`` id (the data builder places each labelled pixel at its lab site; several lab rows
   of a site are averaged), not by a nearest-neighbour search in great-circle distance.
8. **Splits**: leave-one-region-out and random k-fold cross-validation of the satellite set,
   with the early-stopping set drawn inside each training fold
   (:func:`soilbook.models.base.inner_validation_split`), instead of the official k-means
   (3 clusters) 80/10/10 split.
9. **Encoder details** *(inferred)*: post-norm Transformer layers with GELU, learned position
   embeddings, mean pooling over tokens; Huber loss (δ = 1) on the standardised target; batch
   32 as in the official code.

Data (the contract of :mod:`soilbook.data.transfer`)
----------------------------------------------------
``X`` of :meth:`DeepSaltRegressor.fit` / :meth:`~DeepSaltRegressor.predict` is the **satellite**
sample set: ``reflectance`` (sample, date=1, band) with a ``wavelength`` (band, nm) coordinate,
``target``, ``group`` (region), ``site`` (sample, str), optionally ``lat``/``lon`` and
``covariates`` (sample, feature) with ``feature_group`` (the ancillary inputs: sand, clay,
climate, …). The ``lab`` sample set (constructor argument, so :func:`sklearn.base.clone` and
cross-validation keep it) holds lab spectra on the lab grid for the paired sites (same ``site``
ids as the satellite set, ``paired`` = True) and many lab-only sites (``paired`` = False), with
``lat``/``lon``. ``unlabelled`` holds satellite pixels without a target (optional), with
``group``, ``site`` (``''`` away from any lab site), ``lat``/``lon`` and ``origin``; it needs no
covariates (the alignment term reads the encoder only).

No leakage (the rules :func:`teacher_lab_rows` and :func:`unlabelled_rows` implement)
------------------------------------------------------------------------------------
``fit(ds_sat)`` sees only the training fold. A **withheld site** is a site that has a labelled
satellite pixel (``paired`` in the lab set, or ``origin == "paired_site_neighbour"`` in the
unlabelled set) but is not in ``ds_sat`` — the test sites of a fold. The teacher and the lab
normalisation see only lab rows that are

(a) **lab-only** sites whose ``group`` (region) is among ``ds_sat``'s groups and that lie
    farther than ``buffer_m`` from every withheld site, or
(b) **paired** sites whose ``site`` id is in ``ds_sat``.

The alignment term sees only unlabelled pixels that

(c) lie in ``ds_sat``'s groups,
(d) do not belong to a withheld site (pixels of training sites, of lab-only sites and
    off-site pixels, ``site == ''``, are allowed), and
(e) lie farther than ``buffer_m`` from every withheld site's lab location (when both sets
    carry ``lat``/``lon``; several lab samples may share a profile location, so this also
    drops pixels simulated around a co-located lab-only site or spare spectrum).

So in a region hold-out no lab spectrum and no unlabelled pixel of the held-out region is
used (a, c), and in a random split none of, or around, a test site (a, b, d, e). A lab row
whose ``paired`` coordinate is missing counts as paired when its site id occurs in ``ds_sat``,
else as lab-only. When neither ``paired`` nor ``origin`` says which sites are labelled, every
unlabelled pixel of a lab site outside ``ds_sat`` is dropped (only training sites' and off-site
pixels are used).

Architecture *(inferred where the paper is silent; sizes per the official code)*
-------------------------------------------------------------------------------
**Encoder** (:class:`SpectralEncoder`, the same architecture for teacher and student, so that
their layer-``l`` features align): the standardised spectrum on the lab grid is cut into
``n_tokens`` contiguous band groups (zero-padded at the long-wavelength end; 0 = the lab mean),
each group is linearly embedded to ``width`` and gets a learned position embedding, then
``depth`` post-norm Transformer encoder layers (``heads`` heads, feed-forward ``2·width``,
dropout 0.1, GELU). The features of layer ``l`` are its token outputs (n, tokens, width).
The official teacher is d = 64, 4 heads, 3 layers, FF 128, dropout 0.1 — the defaults here.
**Head**: mean over tokens of the last layer (‖ standardised ancillary covariates for the
student) → Linear → GELU → Linear → one value (the standardised target).

**Ancillary inputs.** Every covariate of the satellite sample set's ``covariates`` variable
(the paper's sand, clay and climate min/max/mean temperature and precipitation, where the data
have them) is used when ``use_covariates`` is True: standardised with the training fold's
statistics (missing values → the training mean, with a warning) and concatenated to the
student's pooled features before the head. ``covariate_names_`` lists them after ``fit``; the
same names must be present at ``predict``. The teacher never sees covariates.

**SAU** (:class:`SpectralAdaptationUnit`), applied to the satellite reflectance (physical
units, 0-1):

1. a **fixed** linear-interpolation matrix from the satellite band centres to the lab
   wavelengths (constant extrapolation beyond the first/last satellite band; lab wavelengths in
   the removed water-vapour windows are bridged linearly) — this alone is the ``"no_sau"``
   variant;
2. a learned **band-wise gain and offset** over the lab grid: ``exp(log_gain(λ))·x + offset(λ)``
   (sensor/atmosphere residuals that are the same for every pixel);
3. a per-pixel **spectral-shape correction**: a small MLP reads the pixel's (standardised)
   satellite spectrum and predicts the coefficients ``a_k, b_k`` of ``K + 1`` smooth basis
   functions over wavelength (a constant and ``K = n_basis`` Gaussian bumps evenly spaced over
   the lab range, width = their spacing); the output is
   ``(exp(log_gain)·x)·(1 + Σ a_k φ_k(λ)) + offset + Σ b_k φ_k(λ)`` — the multiplicative part
   absorbs illumination/BRDF scaling and tilt, the additive part moisture darkening, vegetation
   and NPV mixing, which differ from pixel to pixel and vary smoothly with wavelength.

Every learned SAU parameter is a *deviation* (log-gain, offset and the MLP's last layer start at
0), so the SAU starts as the identity on the interpolated spectrum and AdamW's weight decay
shrinks it back towards identity — a prior that suits the few paired sites. The SAU output is
standardised with the **teacher's** lab statistics before the encoder, so student and teacher
encoders read spectra on the same scale.

Training
--------
1. **Teacher** (variants ``"full"`` and ``"no_sau"``): the encoder + head on the leak-free lab
   rows, Huber loss on the standardised lab target — ``log1p(target)`` when
   ``lab_target_transform="log1p"`` — AdamW, cosine schedule, early stopping on an inner split
   of the lab rows (:meth:`~soilbook.models.base.NetworkRegressor._inner_split`) —
   :func:`soilbook.train.fit`; then frozen.
2. **Student**: loss = ``alpha · Huber(target) + beta · Σ_l w_l · MSE(student_l, teacher_l)``
   where the MSE runs over the tokens and width of layer ``l`` and over the training pixels
   that have a paired lab spectrum (teacher features of the pixel's site's lab spectrum; the
   mean spectrum when a site has several lab rows), ``w = layer_weights`` (1.35, 1.05, 0.65 as in
   the official code). With ``unlabelled`` pixels and ``align_weight > 0`` a third term matches
   the mean and covariance (CORAL) of the student's pooled last-layer features on a random
   mini-batch of the allowed unlabelled pixels (rules c-e) to those of the teacher on the
   training lab spectra. Early stopping monitors the plain Huber loss on the inner validation
   pixels. The training loop is :func:`soilbook.train.fit`, through its ``train_loss_fn``
   extension point. The student is initialised randomly, not from the teacher (as in the
   official code), so the ablation ``"no_distillation"`` isolates the distillation.

**One target transform for both domains.** ``lab_target_transform`` ("none" or "log1p") is
the transform of the teacher's lab target; it must match the transform of the satellite target
the student is fitted on. :class:`soilbook.evaluate.Log1pTarget` (``target_transform="log1p"``
in :func:`soilbook.evaluate.cross_validate`) sets it to "log1p" on its clone, so both learn
log1p(EC). :meth:`~DeepSaltRegressor.predict_teacher` and
:meth:`~DeepSaltRegressor.teacher_scores` answer in the original units (expm1 applied).

**A shared teacher.** The teacher depends only on the lab rows it may see, the seed, the
encoder and training settings and ``lab_target_transform`` — not on the variant or the
student-only settings (``alpha``, ``beta``, ``layer_weights``, ``n_basis``, ``align_weight``,
``use_covariates``, ``unlabelled``). With ``checkpoint_dir`` set it checkpoints in its own
folder ``checkpoint_dir / teacher_checkpoint_key(ds)`` (``DeepSaltTeacher-<16 hex>``), so the
``"full"`` and ``"no_sau"`` variants on the same fold train it once: the second restores the
finished teacher instead of training it (a file lock makes a concurrent second fit wait for
the first). The student keeps its folder ``checkpoint_dir / checkpoint_key(ds)``.

Variants
--------
``"full"``            SAU + distillation (+ alignment when ``unlabelled`` is given);
``"no_sau"``          fixed interpolation only, with distillation;
``"no_distillation"`` SAU, ``beta = 0``, no teacher (the lab set only supplies the lab grid and
                      its normalisation; without a lab set the satellite grid and statistics);
``"satellite_only"``  the encoder on the raw (standardised) satellite bands: no SAU, no teacher.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from soilbook.data.schema import SAMPLE, SchemaError, target_values, validate_samples
from soilbook.errors import ParameterError
from soilbook.models import base as _base
from soilbook.models.base import NetworkRegressor, dataset_digest, select_names
from soilbook.train import History, TrainConfig, set_seed

__all__ = [
    "DEFAULT_BUFFER_M",
    "DEPARTURES",
    "LAB_TARGET_TRANSFORMS",
    "MIN_PAIRED_SITES",
    "STUDENT_ONLY_PARAMS",
    "VARIANTS",
    "DeepSaltRegressor",
    "DeepSaltStudent",
    "SpectralAdaptationUnit",
    "SpectralEncoder",
    "held_out_lab_rows",
    "interpolation_matrix",
    "teacher_lab_rows",
    "unlabelled_rows",
    "withheld_sites",
]

VARIANTS = ("full", "no_sau", "no_distillation", "satellite_only")
#: Allowed values of ``lab_target_transform`` (the teacher's lab target transform).
LAB_TARGET_TRANSFORMS = ("none", "log1p")
#: Fewest paired training sites for which distillation is attempted.
MIN_PAIRED_SITES = 10
#: Default ``buffer_m``: no unlabelled pixel and no lab-only spectrum within this distance (m)
#: of a withheld (test) site is used. Unlabelled pixels are simulated in a disc of 250 m around
#: their site (:mod:`soilbook.data.simulate.transfer`), so 500 m covers every pixel around a
#: test site and around any lab sample within 250 m of it (e.g. another depth of the profile).
DEFAULT_BUFFER_M = 500.0
#: Parameters that change only the student: left out of the teacher's checkpoint key, so the
#: variants that train the same teacher share it (``lab`` enters through the rows the teacher
#: may see, ``buffer_m`` through them too).
STUDENT_ONLY_PARAMS = (
    "lab",
    "unlabelled",
    "variant",
    "alpha",
    "beta",
    "layer_weights",
    "n_basis",
    "align_weight",
    "use_covariates",
    "buffer_m",
)
#: Origin label (``unlabelled["origin"]``) of unlabelled pixels simulated around a paired site.
_PAIRED_ORIGIN = "paired_site_neighbour"

#: The departures from the paper and its official code (see the module docstring), one line
#: each, for notebooks and reports.
DEPARTURES: tuple[str, ...] = (
    "No per-domain sparse autoencoders: the spectrum on the lab grid is cut into band-group "
    "tokens (linearly embedded); no reconstruction pre-training.",
    "Alignment through a Spectral Adaptation Unit in the student's path (fixed interpolation, "
    "band-wise gain/offset, smooth per-pixel shape correction; our design), layer-weighted "
    "feature distillation and an optional CORAL term on unlabelled pixels, instead of the "
    "official reconstruction + cosine loss between autoencoder codes; no separate physics loss.",
    "AdamW with a cosine learning-rate schedule instead of Adam with ReduceLROnPlateau.",
    "The student uses the teacher's encoder architecture (same width, depth, heads) instead of "
    "the official wider student, so their layer features align.",
    "Ancillary covariates (sand, clay, climate, where the data have them) are concatenated to "
    "the student's pooled features before the head, not fed to the Transformer as inputs.",
    "A linear output on a standardised target (log1p for skewed targets, in both domains) "
    "instead of the official 0.05 + 76.95 * sigmoid output.",
    "Lab and satellite samples are paired by site id, not by a great-circle nearest-neighbour "
    "search.",
    "Leave-one-region-out and random k-fold cross-validation, with the early-stopping set drawn "
    "inside each training fold, instead of the official k-means 80/10/10 split.",
)


# -- data helpers ------------------------------------------------------------------------------


def _site_ids(ds: xr.Dataset, what: str) -> np.ndarray:
    if "site" not in ds.coords:
        raise SchemaError(
            f"{what} has no 'site' coordinate. Expected: a site id (sample) that pairs lab spectra "
            "with satellite pixels. What to do: build the sets with soilbook.data.transfer, or "
            "assign_coords(site=('sample', ids))."
        )
    return ds["site"].values.astype(str)


def withheld_sites(
    ds_sat: xr.Dataset, lab: xr.Dataset | None = None, unlabelled: xr.Dataset | None = None
) -> np.ndarray | None:
    """Sites that have a labelled satellite pixel but are not in ``ds_sat`` (a fold's test
    sites), as a sorted str array; ``None`` when neither set says which sites are labelled.

    Labelled sites are the lab rows with ``paired`` True and the unlabelled pixels whose
    ``origin`` is ``"paired_site_neighbour"`` (the coordinates :mod:`soilbook.data.transfer`
    writes).
    """
    sat_sites = set(_site_ids(ds_sat, "the satellite set"))
    labelled: set[str] = set()
    known = False
    if lab is not None and "paired" in lab.coords and "site" in lab.coords:
        labelled |= set(lab["site"].values[lab["paired"].values.astype(bool)].astype(str))
        known = True
    if unlabelled is not None and "origin" in unlabelled.coords and "site" in unlabelled.coords:
        origin = unlabelled["origin"].values.astype(str)
        labelled |= set(unlabelled["site"].values[origin == _PAIRED_ORIGIN].astype(str))
        known = True
    if not known:
        return None
    return np.array(sorted(labelled - sat_sites - {""}), dtype=str)


def _finite_latlon(ds: xr.Dataset | None) -> tuple[np.ndarray, np.ndarray] | None:
    if ds is None or "lat" not in ds.coords or "lon" not in ds.coords:
        return None
    return ds["lat"].values.astype(np.float64), ds["lon"].values.astype(np.float64)


def _near_withheld(
    ds: xr.Dataset, lab: xr.Dataset | None, withheld: np.ndarray | None, buffer_m: float
) -> np.ndarray:
    """Boolean (n_sample of ``ds``): within ``buffer_m`` of the lab location of a withheld
    site (False everywhere when the buffer is 0, no site is withheld, or coordinates lack)."""
    n = ds.sizes[SAMPLE]
    near = np.zeros(n, dtype=bool)
    here, there = _finite_latlon(ds), _finite_latlon(lab)
    if float(buffer_m) <= 0 or withheld is None or withheld.size == 0:
        return near
    if here is None or there is None or "site" not in lab.coords:
        return near
    from soilbook.geo import pair_nearest

    pos = np.flatnonzero(np.isin(lab["site"].values.astype(str), withheld))
    lat_b, lon_b = there[0][pos], there[1][pos]
    ok_b = np.isfinite(lat_b) & np.isfinite(lon_b)
    ok_a = np.flatnonzero(np.isfinite(here[0]) & np.isfinite(here[1]))
    if not ok_b.any() or ok_a.size == 0:
        return near
    pairs = pair_nearest(
        here[0][ok_a], here[1][ok_a], lat_b[ok_b], lon_b[ok_b], float(buffer_m) / 1000.0
    )
    near[ok_a[pairs["index_a"].to_numpy()]] = True
    return near


def teacher_lab_rows(
    lab: xr.Dataset, ds_sat: xr.Dataset, buffer_m: float = DEFAULT_BUFFER_M
) -> np.ndarray:
    """Positions of the lab rows the teacher may see when the student is fitted on ``ds_sat``.

    A lab row is allowed when it is (a) a lab-only site (``paired`` False) whose ``group`` is
    among ``ds_sat``'s groups and that lies farther than ``buffer_m`` (m) from the lab location
    of every withheld site (:func:`withheld_sites`; needs ``lat``/``lon``), or (b) a paired site
    whose ``site`` id is in ``ds_sat``. Lab rows of sites in a test fold, lab-only rows of
    held-out regions and lab-only rows next to a test site are never used. Without a ``paired``
    coordinate a row counts as paired exactly when its site id is in ``ds_sat``.
    """
    sites = _site_ids(lab, "the lab set")
    sat_sites = set(_site_ids(ds_sat, "the satellite set"))
    sat_groups = set(ds_sat["group"].values.astype(str))
    groups = lab["group"].values.astype(str)
    in_sat = np.isin(sites, list(sat_sites))
    if "paired" in lab.coords:
        paired = lab["paired"].values.astype(bool)
    else:
        paired = in_sat
    near = _near_withheld(lab, lab, withheld_sites(ds_sat, lab), buffer_m)
    lab_only_ok = ~paired & np.isin(groups, list(sat_groups)) & ~near
    paired_ok = paired & in_sat
    return np.flatnonzero(lab_only_ok | paired_ok)


def held_out_lab_rows(lab: xr.Dataset, ds_sat: xr.Dataset) -> np.ndarray:
    """Positions of the lab rows of a fit's test data: the rows of every withheld site
    (:func:`withheld_sites`, the test fold's labelled sites) and every lab row of a withheld
    site's group that ``ds_sat`` lacks (a held-out region, its lab-only sites included). None
    of them is a row :func:`teacher_lab_rows` allows, so scores on them are held-out scores."""
    sites = _site_ids(lab, "the lab set")
    withheld = withheld_sites(ds_sat, lab)
    if withheld is None or withheld.size == 0:
        return np.array([], dtype=int)
    test = np.isin(sites, withheld)
    if "group" in lab.coords and "group" in ds_sat.coords:
        groups = lab["group"].values.astype(str)
        held_groups = np.setdiff1d(groups[test], ds_sat["group"].values.astype(str))
        test |= np.isin(groups, held_groups)
    return np.flatnonzero(test)


def unlabelled_rows(
    unlabelled: xr.Dataset,
    ds_sat: xr.Dataset,
    lab: xr.Dataset | None = None,
    buffer_m: float = DEFAULT_BUFFER_M,
) -> np.ndarray:
    """Positions of the unlabelled pixels the student may use when fitted on ``ds_sat``.

    A pixel is allowed when (c) its ``group`` is among ``ds_sat``'s groups, (d) its ``site`` is
    not a withheld site (:func:`withheld_sites`: a site with a labelled pixel that is not in
    ``ds_sat``; pixels of training sites, lab-only sites and off-site pixels ``site == ''``
    pass), and (e) it lies farther than ``buffer_m`` (m) from the lab location of every
    withheld site (when ``unlabelled`` and ``lab`` carry ``lat``/``lon``). When no set says
    which sites are labelled (no ``paired`` in ``lab``, no ``origin`` in ``unlabelled``), only
    pixels of ``ds_sat``'s sites and off-site pixels pass (d).
    """
    sites = _site_ids(unlabelled, "the unlabelled set")
    sat_sites = _site_ids(ds_sat, "the satellite set")
    keep = np.isin(unlabelled["group"].values.astype(str), ds_sat["group"].values.astype(str))
    withheld = withheld_sites(ds_sat, lab, unlabelled)
    if withheld is None:
        keep &= (sites == "") | np.isin(sites, sat_sites)
    else:
        keep &= ~np.isin(sites, withheld)
        keep &= ~_near_withheld(unlabelled, lab, withheld, buffer_m)
    return np.flatnonzero(keep)


def interpolation_matrix(source_nm: np.ndarray, target_nm: np.ndarray) -> np.ndarray:
    """The (n_target, n_source) matrix of linear interpolation from ``source_nm`` band centres to
    ``target_nm`` (constant beyond the ends); each row sums to 1."""
    source_nm = np.asarray(source_nm, dtype=np.float64)
    target_nm = np.asarray(target_nm, dtype=np.float64)
    order = np.argsort(source_nm)
    eye = np.eye(source_nm.size)
    out = np.empty((target_nm.size, source_nm.size))
    for j_sorted, j in enumerate(order):
        out[:, j] = np.interp(target_nm, source_nm[order], eye[j_sorted])
    return out


def _spectra(ds: xr.Dataset, what: str, bands: Sequence[str] | None = None) -> np.ndarray:
    """(n, band) float32 reflectance of the one acquisition date."""
    if "reflectance" not in ds.data_vars:
        raise SchemaError(
            f"{what} has no 'reflectance'. Expected: reflectance (sample, date, band). What to "
            "do: pass a spectral sample set."
        )
    refl = ds["reflectance"]
    if refl.sizes.get("date", 1) != 1:
        raise SchemaError(
            f"{what} has {refl.sizes['date']} dates; DeepSalt reads one acquisition. What to do: "
            "select one with ds.isel(date=[k])."
        )
    if bands is not None:
        refl = select_names(refl, "band", list(bands), what)
    return refl.transpose(SAMPLE, "date", "band").values[:, 0, :].astype(np.float32)


def _wavelengths(ds: xr.Dataset, what: str) -> np.ndarray:
    if "wavelength" not in ds.coords:
        raise SchemaError(
            f"{what} has no 'wavelength' (band, nm) coordinate. Expected: band centres in nm, "
            "needed to map satellite bands onto the lab grid. What to do: "
            "assign_coords(wavelength=('band', centres_nm)), or use variant='satellite_only'."
        )
    return ds["wavelength"].values.astype(np.float64)


def _stats(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (NaN-aware; std 1 where constant), float32, keepdims on axis 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean = np.nanmean(arr.astype(np.float64), axis=0, keepdims=True)
        std = np.nanstd(arr.astype(np.float64), axis=0, keepdims=True)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def _zscore(arr: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    z = ((arr.astype(np.float32) - stats[0]) / stats[1]).astype(np.float32)
    z[~np.isfinite(z)] = 0.0
    return np.ascontiguousarray(z)


# -- modules -------------------------------------------------------------------------------------


class SpectralEncoder(nn.Module):
    """Transformer over band-group tokens; returns every layer's token features."""

    def __init__(
        self, n_bands: int, n_tokens: int, width: int, depth: int, heads: int, dropout: float
    ):
        super().__init__()
        self.n_bands = int(n_bands)
        self.token_size = math.ceil(n_bands / max(1, min(n_tokens, n_bands)))
        self.n_tokens = math.ceil(n_bands / self.token_size)
        self.pad = self.n_tokens * self.token_size - self.n_bands
        self.embed = nn.Linear(self.token_size, width)
        self.position = nn.Parameter(torch.randn(1, self.n_tokens, width) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width,
                heads,
                dim_feedforward=2 * width,
                dropout=dropout,
                activation="gelu",
                batch_first=True,
            )
            for _ in range(depth)
        )

    def forward(self, z: Tensor) -> list[Tensor]:
        if self.pad:
            z = F.pad(z, (0, self.pad))
        h = self.embed(z.reshape(z.shape[0], self.n_tokens, self.token_size)) + self.position
        feats = []
        for layer in self.layers:
            h = layer(h)
            feats.append(h)
        return feats


class _Head(nn.Module):
    def __init__(self, width: int, n_extra: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width + n_extra, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, pooled: Tensor, extra: Tensor | None = None) -> Tensor:
        if extra is not None:
            pooled = torch.cat([pooled, extra], dim=1)
        return self.net(pooled).reshape(-1)


class SpectralAdaptationUnit(nn.Module):
    """Satellite spectrum (standardised satellite bands) → adapted reflectance on the lab grid.

    See the module docstring. ``learn=False`` keeps only the fixed interpolation (``"no_sau"``).
    Buffers: ``interp`` (n_lab, n_sat), ``sat_mean``/``sat_std`` (n_sat, to undo the input
    standardisation), ``basis`` (K + 1, n_lab).
    """

    def __init__(
        self,
        interp: np.ndarray,
        sat_stats: tuple[np.ndarray, np.ndarray],
        lab_wavelength: np.ndarray,
        n_basis: int = 8,
        hidden: int = 32,
        learn: bool = True,
    ):
        super().__init__()
        n_lab, n_sat = interp.shape
        self.learn = bool(learn)
        self.register_buffer("interp", torch.as_tensor(interp, dtype=torch.float32))
        self.register_buffer("sat_mean", torch.as_tensor(sat_stats[0].reshape(-1)))
        self.register_buffer("sat_std", torch.as_tensor(sat_stats[1].reshape(-1)))
        wl = np.asarray(lab_wavelength, dtype=np.float64)
        lo, hi = float(wl.min()), float(wl.max())
        centres = np.linspace(lo, hi, n_basis) if n_basis > 1 else np.array([(lo + hi) / 2])
        spacing = (hi - lo) / max(n_basis - 1, 1) or 1.0
        bumps = np.exp(-0.5 * ((wl[None, :] - centres[:, None]) / spacing) ** 2)
        basis = np.concatenate([np.ones((1, n_lab)), bumps], axis=0)
        self.register_buffer("basis", torch.as_tensor(basis, dtype=torch.float32))
        if self.learn:
            self.log_gain = nn.Parameter(torch.zeros(n_lab))
            self.offset = nn.Parameter(torch.zeros(n_lab))
            k = basis.shape[0]
            self.shape_mlp = nn.Sequential(
                nn.Linear(n_sat, hidden), nn.GELU(), nn.Linear(hidden, 2 * k)
            )
            nn.init.zeros_(self.shape_mlp[2].weight)
            nn.init.zeros_(self.shape_mlp[2].bias)

    def interpolate(self, z_sat: Tensor) -> Tensor:
        """The fixed part: satellite reflectance interpolated onto the lab grid."""
        raw = z_sat * self.sat_std + self.sat_mean
        return raw @ self.interp.T

    def forward(self, z_sat: Tensor) -> Tensor:
        x = self.interpolate(z_sat)
        if not self.learn:
            return x
        k = self.basis.shape[0]
        coef = self.shape_mlp(z_sat)
        mult = coef[:, :k] @ self.basis
        add = coef[:, k:] @ self.basis
        return torch.exp(self.log_gain) * x * (1.0 + mult) + self.offset + add


class DeepSaltStudent(nn.Module):
    """[SAU →] lab standardisation → encoder → head (‖ covariates).

    ``forward(spectra[, covariates], *aux)`` returns the standardised prediction (n,); trailing
    auxiliary training tensors (teacher features, pair mask) are ignored.
    :meth:`forward_features` also returns every encoder layer's features.
    """

    def __init__(
        self,
        encoder: SpectralEncoder,
        head: _Head,
        sau: SpectralAdaptationUnit | None,
        lab_stats: tuple[np.ndarray, np.ndarray] | None,
        n_covariates: int,
    ):
        super().__init__()
        self.sau = sau
        self.encoder = encoder
        self.head = head
        self.n_covariates = int(n_covariates)
        self.n_inputs = 1 + (self.n_covariates > 0)
        if lab_stats is not None:
            self.register_buffer("lab_mean", torch.as_tensor(lab_stats[0].reshape(-1)))
            self.register_buffer("lab_std", torch.as_tensor(lab_stats[1].reshape(-1)))
        else:
            self.lab_mean = None
            self.lab_std = None

    def encoder_input(self, spectra: Tensor) -> Tensor:
        """What the encoder reads: the standardised (adapted) spectrum."""
        if self.sau is None:
            return spectra
        return (self.sau(spectra) - self.lab_mean) / self.lab_std

    def forward_features(
        self, spectra: Tensor, covariates: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        feats = self.encoder(self.encoder_input(spectra))
        return self.head(feats[-1].mean(dim=1), covariates), feats

    def forward(self, *inputs: Tensor) -> Tensor:
        cov = inputs[1] if self.n_covariates else None
        return self.forward_features(inputs[0], cov)[0]


class _Teacher(nn.Module):
    def __init__(self, encoder: SpectralEncoder, head: _Head):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward_features(self, z_lab: Tensor) -> tuple[Tensor, list[Tensor]]:
        feats = self.encoder(z_lab)
        return self.head(feats[-1].mean(dim=1)), feats

    def forward(self, z_lab: Tensor) -> Tensor:
        return self.forward_features(z_lab)[0]


def _coral(a: Tensor, b: Tensor) -> Tensor:
    """Mean + covariance (CORAL) discrepancy between feature batches a (n, d) and b (m, d)."""
    d = a.shape[1]
    mean = (a.mean(0) - b.mean(0)).pow(2).sum() / d
    ca = torch.cov(a.T) if a.shape[0] > 1 else torch.zeros(d, d, device=a.device)
    cb = torch.cov(b.T) if b.shape[0] > 1 else torch.zeros(d, d, device=b.device)
    return mean + (ca - cb).pow(2).sum() / (4 * d * d)


# -- the estimator -------------------------------------------------------------------------------


class DeepSaltRegressor(NetworkRegressor):
    """DeepSalt as a scikit-learn regressor on the satellite sample set (see the module docstring).

    Parameters
    ----------
    lab : the lab sample set (paired and lab-only sites); needed by ``"full"`` and ``"no_sau"``.
    unlabelled : satellite pixels without target (optional; used by the alignment term).
    variant : ``"full"``, ``"no_sau"``, ``"no_distillation"`` or ``"satellite_only"``.
    width, depth, heads : the encoder (official teacher: 64, 3, 4); FF = 2·width.
    n_tokens : band-group tokens per spectrum *(inferred)*.
    dropout : encoder dropout (0.1 as in the official code).
    alpha, beta : weights of the supervised Huber and the distillation terms (0.1 / 0.9).
    layer_weights : per-layer distillation weights, one per encoder layer (1.35, 1.05, 0.65).
    n_basis : Gaussian basis functions of the SAU shape correction (plus a constant).
    align_weight : weight of the CORAL term on ``unlabelled`` pixels (0 disables it).
    use_covariates : feed every ``covariates`` feature of the satellite set (the ancillary inputs:
        sand, clay, climate, … where the data have them) to the student head, standardised on
        the training fold; ``False`` uses the spectrum alone.
    lab_target_transform : ``"none"`` or ``"log1p"``: the teacher is fitted on ``log1p`` of the
        lab target with ``"log1p"``. Must match the transform of the satellite target the
        student learns; :class:`soilbook.evaluate.Log1pTarget` sets it to ``"log1p"`` itself.
        :meth:`predict_teacher` always answers in the original units.
    buffer_m : distance (m) around every withheld (test) site within which no unlabelled pixel
        and no lab-only spectrum is used (rules a and e of the module docstring; 0 turns the
        distance rule off, the site and region rules stay).
    (training settings: see :class:`~soilbook.models.base.NetworkRegressor`; the loss is Huber.
    Defaults differ from the base: ``epochs=150``, ``batch_size=32`` (the official code's),
    ``patience=20`` — a satellite set of ~100 paired sites gives only a few mini-batches per
    epoch, and with few regions the grouped inner split may be empty (then all epochs run);
    measured on the test module's toy trio, 40 epochs of 64 left every student untrained.)

    Attributes
    ----------
    module_ : the student (:class:`DeepSaltStudent`); teacher_ : the frozen teacher (or None).
    teacher_history_, history_ : training histories (:meth:`training_histories`);
    n_teacher_rows_, teacher_sites_ : what the teacher saw; teacher_inner_split_ : its
    early-stopping split; teacher_target_mean_, teacher_target_scale_ : its target
    standardisation (on the ``lab_target_transform`` scale); teacher_checkpoint_path_ : its
    checkpoint folder (or None); n_paired_sites_ : paired training sites used for distillation.
    covariate_names_ : the ancillary covariates the student uses ([] for none).
    unlabelled_rows_, n_unlabelled_ : the unlabelled pixels the alignment term used (positions in
    ``unlabelled``) and their number.
    bands_, sat_wavelength_, lab_wavelength_ : the inputs' grids. sau_ : gain/offset over the
    lab wavelength (xr.Dataset).
    """

    def __init__(
        self,
        lab: xr.Dataset | None = None,
        unlabelled: xr.Dataset | None = None,
        *,
        variant: str = "full",
        width: int = 64,
        depth: int = 3,
        heads: int = 4,
        n_tokens: int = 32,
        dropout: float = 0.1,
        alpha: float = 0.1,
        beta: float = 0.9,
        layer_weights: Sequence[float] = (1.35, 1.05, 0.65),
        n_basis: int = 8,
        align_weight: float = 0.1,
        use_covariates: bool = True,
        lab_target_transform: str = "none",
        buffer_m: float = DEFAULT_BUFFER_M,
        epochs: int = 150,
        batch_size: int = 32,
        patience: int = 20,
        loss: str = "huber",
        progress: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            patience=patience,
            loss=loss,
            progress=progress,
            **kwargs,
        )
        self.lab = lab
        self.unlabelled = unlabelled
        self.variant = variant
        self.width = width
        self.depth = depth
        self.heads = heads
        self.n_tokens = n_tokens
        self.dropout = dropout
        self.alpha = alpha
        self.beta = beta
        self.layer_weights = layer_weights
        self.n_basis = n_basis
        self.align_weight = align_weight
        self.use_covariates = use_covariates
        self.lab_target_transform = lab_target_transform
        self.buffer_m = buffer_m

    # -- settings ---------------------------------------------------------------------------------

    @property
    def _uses_teacher(self) -> bool:
        return self.variant in ("full", "no_sau") and float(self.beta) > 0

    def _check_params(self) -> None:
        super()._check_params()
        name = type(self).__name__
        if self.variant not in VARIANTS:
            raise ParameterError(f"{name}: variant={self.variant!r}; allowed: {list(VARIANTS)}.")
        for key in ("width", "depth", "heads", "n_tokens", "n_basis"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ParameterError(f"{name}: {key}={v!r} must be an int >= 1.")
        if self.width % self.heads:
            raise ParameterError(
                f"{name}: width={self.width} must be divisible by heads={self.heads}."
            )
        if not 0 <= float(self.dropout) < 1:
            raise ParameterError(f"{name}: dropout={self.dropout!r} must be in [0, 1).")
        for key in ("alpha", "beta", "align_weight"):
            if not float(getattr(self, key)) >= 0:
                raise ParameterError(f"{name}: {key}={getattr(self, key)!r} must be >= 0.")
        if float(self.alpha) + float(self.beta) <= 0:
            raise ParameterError(f"{name}: alpha and beta cannot both be 0.")
        if len(tuple(self.layer_weights)) != int(self.depth):
            raise ParameterError(
                f"{name}: layer_weights has {len(tuple(self.layer_weights))} values but depth="
                f"{self.depth}; give one weight per encoder layer (e.g. layer_weights=(1.0,) * "
                "depth)."
            )
        if self.loss != "huber":
            raise ParameterError(f"{name}: loss={self.loss!r}; DeepSalt trains with 'huber'.")
        if self.lab_target_transform not in LAB_TARGET_TRANSFORMS:
            raise ParameterError(
                f"{name}: lab_target_transform={self.lab_target_transform!r}; allowed: "
                f"{list(LAB_TARGET_TRANSFORMS)} ('log1p' when the satellite target is fitted on "
                "log1p, e.g. inside soilbook.evaluate.Log1pTarget, which sets it itself)."
            )
        buffer = self.buffer_m
        if (
            isinstance(buffer, bool)
            or not isinstance(buffer, int | float | np.integer | np.floating)
            or not math.isfinite(float(buffer))
            or float(buffer) < 0
        ):
            raise ParameterError(
                f"{name}: buffer_m={buffer!r} must be a distance >= 0 in metres (0 turns the "
                "distance rule off)."
            )
        if self.variant in ("full", "no_sau") and self.lab is None:
            raise ParameterError(
                f"{name}: variant={self.variant!r} needs the lab set (lab=...). What to do: pass "
                "DeepSaltRegressor(lab=transfer.lab, ...), or use variant='no_distillation' or "
                "'satellite_only'."
            )

    # -- inputs -----------------------------------------------------------------------------------

    def _setup_inputs(self, ds: xr.Dataset) -> None:
        self.bands_ = [str(b) for b in ds["band"].values]
        self.sat_wavelength_ = (
            ds["wavelength"].values.astype(np.float64) if "wavelength" in ds.coords else None
        )
        self.covariate_names_ = (
            [str(f) for f in ds["feature"].values]
            if self.use_covariates and "covariates" in ds.data_vars
            else []
        )

    def _arrays(self, ds: xr.Dataset) -> dict[str, np.ndarray]:
        out = {"spectra": _spectra(ds, "the satellite set", self.bands_)}
        if self.covariate_names_:
            cov = select_names(ds["covariates"], "feature", self.covariate_names_, "the covariates")
            out["covariates"] = cov.transpose(SAMPLE, "feature").values.astype(np.float32)
        return out

    def _input_groups(self) -> dict[str, Any]:
        groups: dict[str, Any] = {"spectra": "spectral"}
        if self.covariate_names_:
            groups["covariates"] = list(self._feature_groups_)
        return groups

    # -- fitting ----------------------------------------------------------------------------------

    def _encoder(self, n_bands: int) -> SpectralEncoder:
        return SpectralEncoder(
            n_bands,
            int(self.n_tokens),
            int(self.width),
            int(self.depth),
            int(self.heads),
            float(self.dropout),
        )

    def _teacher_target(self, lab_train: xr.Dataset) -> np.ndarray:
        """The teacher's training target (n,) float64: the lab target after
        ``lab_target_transform``."""
        y = target_values(lab_train)
        if self.lab_target_transform == "log1p":
            if np.any(y <= -1.0):
                raise ValueError(
                    f"lab_target_transform='log1p' needs lab targets > -1, but the lab set's "
                    f"minimum is {y.min():g}. What to do: use target_transform='none' (and "
                    "lab_target_transform='none'), or check the lab target's units."
                )
            return np.log1p(y)
        return y

    def _teacher_params(self) -> dict[str, Any]:
        """The parameters that define the teacher: all but the student-only ones
        (:data:`STUDENT_ONLY_PARAMS`) and those that do not change a result."""
        params = self.get_params(deep=False)
        for name in (*_base._NOT_IN_KEY, *STUDENT_ONLY_PARAMS):
            params.pop(name, None)
        return params

    def _teacher_key(self, lab_train: xr.Dataset, y_teacher: np.ndarray) -> str:
        return self._stage_key(
            "DeepSaltTeacher",
            "teacher",
            self._teacher_params(),
            data=dataset_digest(lab_train),
            y=hashlib.sha256(np.asarray(y_teacher, dtype=np.float64).tobytes()).hexdigest(),
            seed=int(self.seed),
        )

    def teacher_checkpoint_key(self, ds: xr.Dataset) -> str:
        """The folder under ``checkpoint_dir`` of the teacher of a fit on the satellite set ``ds``.

        ``DeepSaltTeacher-<16 hex digits>``: a sha256 of the lab rows the teacher may see
        (:func:`teacher_lab_rows`, by content), its target (after ``lab_target_transform``),
        the teacher-defining parameters (all but :data:`STUDENT_ONLY_PARAMS`, ``checkpoint_dir``,
        ``progress`` and ``cpu_threads``), the seed and the training code. It does **not**
        depend on ``variant`` or the student-only settings, so the ``"full"`` and ``"no_sau"``
        variants of one fold share one teacher folder.
        """
        if self.lab is None:
            raise ValueError("no lab set (lab=None): this estimator has no teacher.")
        rows = teacher_lab_rows(self.lab, ds, float(self.buffer_m))
        lab_train = self.lab.isel({SAMPLE: rows})
        return self._teacher_key(lab_train, self._teacher_target(lab_train))

    def _teacher_config(self, lab_train: xr.Dataset, y_teacher: np.ndarray) -> TrainConfig:
        """The teacher's :class:`TrainConfig`: the estimator's settings, checkpointing in its
        own folder (sets ``teacher_checkpoint_path_``)."""
        self.teacher_checkpoint_path_ = None
        if self.checkpoint_dir is not None:
            self.teacher_checkpoint_path_ = self._stage_folder(
                self._teacher_key(lab_train, y_teacher), "teacher's checkpoint folder"
            )
        return self._train_config(self.teacher_checkpoint_path_)

    def _fit_teacher(self, lab_train: xr.Dataset, config: TrainConfig) -> np.ndarray:
        """Train the teacher on ``lab_train`` (already restricted by :func:`teacher_lab_rows`);
        return the standardised lab spectra (n_lab, n_lab_bands) float32 it was trained on.

        The target is the lab target after ``lab_target_transform``. ``config`` is the
        student's; the teacher trains with the same settings but checkpoints in its own,
        variant-independent folder (:meth:`teacher_checkpoint_key`) under a file lock, so a
        second variant on the same fold restores the finished teacher instead of training it.
        """
        z = _zscore(_spectra(lab_train, "the lab set"), self.lab_stats_)
        y = self._teacher_target(lab_train)
        self.teacher_target_transform_ = str(self.lab_target_transform)
        units = str(lab_train["target"].attrs.get("units", self.target_units_))
        self.teacher_target_units_ = (
            f"log1p({units})" if self.teacher_target_transform_ == "log1p" else units
        )
        self.teacher_target_mean_ = float(y.mean())
        sd = float(y.std())
        self.teacher_target_scale_ = sd if sd > 1e-12 else 1.0
        y_std = torch.from_numpy(
            ((y - self.teacher_target_mean_) / self.teacher_target_scale_).astype(np.float32)
        )
        split = self._inner_split(lab_train)  # the student's _fit_student sets its own after
        self.teacher_inner_split_ = split
        teacher_config = self._teacher_config(lab_train, y)
        set_seed(int(self.seed))
        teacher = _Teacher(self._encoder(z.shape[1]), _Head(int(self.width), 0))
        self.teacher_history_ = self._train_stage(
            "teacher",
            self._teacher_params(),
            teacher,
            [torch.from_numpy(z)],
            y_std,
            split,
            teacher_config,
        )
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher_ = teacher
        return z

    @torch.no_grad()
    def _teacher_features(self, z_lab: np.ndarray) -> Tensor:
        """(n, depth, tokens, width) teacher features of standardised lab spectra (CPU)."""
        teacher = self.teacher_.to(self.device_).eval()
        parts = []
        for s in range(0, z_lab.shape[0], 256):
            x = torch.from_numpy(z_lab[s : s + 256]).to(self.device_)
            parts.append(torch.stack(teacher.forward_features(x)[1], dim=1).float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0)

    def fit(self, ds: xr.Dataset, y: Any = None) -> DeepSaltRegressor:
        """Fit on the satellite sample set ``ds`` (teacher first when the variant has one).

        Steps: checks and inputs; the lab grid and the leak-free lab rows
        (:meth:`_prepare_lab`); the student's input and target standardisation; the teacher and
        its features of every training pixel's paired lab spectrum (:meth:`_distillation_targets`);
        the student (:meth:`_fit_student`, with the unlabelled pixels :func:`unlabelled_rows`
        allows). With ``checkpoint_dir`` set, the student checkpoints under
        ``checkpoint_dir / checkpoint_key(ds, y)`` and the teacher under its variant-independent
        ``checkpoint_dir / teacher_checkpoint_key(ds)``; a re-run resumes both, and a finished
        teacher is restored without training (also by another variant on the same fold).

        ``ds`` may carry ``covariates`` (sample, feature) with ``feature_group``: with
        ``use_covariates`` they are the student's ancillary inputs (``covariate_names_``).
        """
        config, y_raw = self._start_fit(ds, y)
        self._setup_inputs(ds)
        self._feature_groups_ = (
            [str(g) for g in ds["feature_group"].values] if self.covariate_names_ else []
        )
        raw = self._arrays(ds)  # checks reflectance and the single date
        lab_train = self._prepare_lab(ds, raw)  # cheap checks before any training
        self._fit_input_stats(raw)  # the student's inputs: training samples only
        arrays = self._standardise(raw, warn=True)
        y_std = self._fit_target_scale(y_raw)
        aux = self._distillation_targets(ds, lab_train, config) if self._uses_teacher else []
        self._fit_student(ds, arrays, aux, y_std, config)
        self._teacher_pooled = None
        return self

    def _prepare_lab(self, ds: xr.Dataset, raw: dict[str, np.ndarray]) -> xr.Dataset | None:
        """Set the lab grid (``lab_wavelength_``) and statistics (``lab_stats_``) and return the
        lab rows the teacher may see (None without a lab set). Raises before any training when
        the grids do not overlap, no lab row is allowed, or too few sites are paired."""
        lab = self.lab
        adapt = self.variant != "satellite_only"
        self.teacher_ = None
        self.teacher_history_ = None
        self.teacher_inner_split_ = None
        self.teacher_checkpoint_path_ = None
        self.n_teacher_rows_ = 0
        self.teacher_sites_ = np.array([], dtype=str)
        self.teacher_held_out_rows_ = np.array([], dtype=int)
        self.n_paired_sites_ = 0
        self._teacher_pooled = None
        if adapt:
            self.sat_wavelength_ = _wavelengths(ds, "the satellite set")
        if not adapt:
            self.lab_wavelength_ = None
            self.lab_stats_ = None
            return None
        if lab is None:  # no_distillation without a lab set: the satellite grid itself
            self.lab_wavelength_ = self.sat_wavelength_.copy()
            self.lab_stats_ = _stats(raw["spectra"])
            return None
        validate_samples(lab)
        lab_spectra = _spectra(lab, "the lab set")
        self.lab_wavelength_ = _wavelengths(lab, "the lab set")
        lo, hi = self.sat_wavelength_.min(), self.sat_wavelength_.max()
        overlap = (self.lab_wavelength_ >= lo) & (self.lab_wavelength_ <= hi)
        if overlap.sum() < 2:
            raise SchemaError(
                f"the lab grid ({self.lab_wavelength_.min():.0f}-{self.lab_wavelength_.max():.0f}"
                f" nm) and the satellite bands ({lo:.0f}-{hi:.0f} nm) do not overlap. What to "
                "do: check the wavelength coordinates (both in nm)."
            )
        rows = teacher_lab_rows(lab, ds, float(self.buffer_m))
        if rows.size == 0:
            raise ValueError(
                "no lab row is allowed for this training set (no paired site of ds and no "
                "lab-only site in its groups). What to do: check the 'site'/'group' ids of the "
                "lab and satellite sets, or use variant='satellite_only'."
            )
        lab_train = lab.isel({SAMPLE: rows})
        self.teacher_held_out_rows_ = held_out_lab_rows(lab, ds)
        self.n_teacher_rows_ = int(rows.size)
        self.teacher_sites_ = np.unique(_site_ids(lab_train, "the lab set"))
        self.lab_stats_ = _stats(lab_spectra[rows])
        if self._uses_teacher:
            sat_sites = _site_ids(ds, "the satellite set")
            lab_sites = _site_ids(lab_train, "the lab set")
            paired_sites = np.intersect1d(np.unique(sat_sites), lab_sites)
            self.n_paired_sites_ = int(paired_sites.size)
            if paired_sites.size < MIN_PAIRED_SITES:
                raise ValueError(
                    f"only {paired_sites.size} training site(s) of the satellite set have a lab "
                    f"spectrum; distillation needs at least {MIN_PAIRED_SITES}. What to do: "
                    "check that the 'site' ids of both sets match, train on more paired sites, "
                    "or use variant='no_distillation' / 'satellite_only' (or beta=0)."
                )
        return lab_train

    def _distillation_targets(
        self, ds: xr.Dataset, lab_train: xr.Dataset, config: TrainConfig
    ) -> list[Tensor]:
        """Train the teacher, then return the auxiliary training tensors of the student: the
        teacher's features (n, depth, tokens, width) of every pixel's paired lab spectrum (the
        site's mean spectrum; zeros where unpaired) and the pair mask (n,) float32. Also keeps
        the teacher's pooled last-layer features of the lab rows for the alignment term."""
        lab_z = self._fit_teacher(lab_train, config)
        lab_sites = _site_ids(lab_train, "the lab set")
        sat_sites = _site_ids(ds, "the satellite set")
        paired_z = np.zeros((ds.sizes[SAMPLE], lab_z.shape[1]), dtype=np.float32)
        mask = np.zeros(ds.sizes[SAMPLE], dtype=np.float32)
        for site in np.intersect1d(np.unique(sat_sites), lab_sites):
            paired_z[sat_sites == site] = lab_z[lab_sites == site].mean(axis=0)
            mask[sat_sites == site] = 1.0
        aux = [self._teacher_features(paired_z), torch.from_numpy(mask)]
        self._teacher_pooled = self._teacher_features(lab_z)[:, -1].mean(dim=1)
        return aux

    def _fit_student(
        self,
        ds: xr.Dataset,
        arrays: dict[str, np.ndarray],
        aux: list[Tensor],
        y_std: np.ndarray,
        config: TrainConfig,
    ) -> None:
        """Build and train the student (``module_``, ``history_``) on the standardised inputs
        plus the distillation tensors ``aux``, early-stopping on the grouped inner split."""
        split = self._inner_split(ds)
        set_seed(int(self.seed))
        self.module_ = self._build_module(ds, arrays)
        self.unlabelled_rows_ = np.array([], dtype=int)
        unl = self._unlabelled_tensor(ds) if self._uses_teacher else None
        self.n_unlabelled_ = 0 if unl is None else int(unl.shape[0])
        tensors = [torch.from_numpy(a) for a in arrays.values()] + aux
        self.history_: History = self._train(
            self.module_,
            tensors,
            torch.from_numpy(y_std),
            split,
            config,
            {**self._run_key(), "stage": "student"},
            train_loss_fn=self._make_loss(unl),
        )
        self.module_.eval()

    def _run_key(self) -> dict[str, Any]:
        key = super()._run_key()
        for name in ("lab", "unlabelled"):  # identified by shape, not by repr of the data
            data = getattr(self, name)
            key["params"][name] = None if data is None else repr(dict(data.sizes))
        return key

    def _unlabelled_tensor(self, ds: xr.Dataset) -> Tensor | None:
        """The standardised spectra (n, band) of the unlabelled pixels the leakage rules allow
        for the training set ``ds`` (:func:`unlabelled_rows`); None when unused. Sets
        ``unlabelled_rows_`` (positions in ``unlabelled``). The alignment term reads the
        encoder only, so the pixels need no covariates."""
        self.unlabelled_rows_ = np.array([], dtype=int)
        if self.unlabelled is None or float(self.align_weight) <= 0:
            return None
        rows = unlabelled_rows(self.unlabelled, ds, self.lab, float(self.buffer_m))
        self.unlabelled_rows_ = rows
        if rows.size == 0:
            return None
        unl = self.unlabelled.isel({SAMPLE: rows})
        spectra = {"spectra": _spectra(unl, "the unlabelled set", self.bands_)}
        return torch.from_numpy(self._standardise(spectra)["spectra"])

    def _make_loss(self, unl: Any):
        alpha, beta = float(self.alpha), float(self.beta)
        weights = [float(w) for w in self.layer_weights]
        use_teacher = self._uses_teacher
        gamma = float(self.align_weight) if unl is not None else 0.0
        target_pooled = self._teacher_pooled if gamma > 0 else None
        batch_size = int(self.batch_size)

        def loss(module: DeepSaltStudent, batch: list[Tensor], target: Tensor) -> Tensor:
            n_in = module.n_inputs
            cov = batch[1] if module.n_covariates else None
            pred, feats = module.forward_features(batch[0], cov)
            total = alpha * F.huber_loss(pred.float(), target, delta=1.0)
            if use_teacher:
                teacher, mask = batch[n_in], batch[n_in + 1]
                denom = mask.sum().clamp(min=1.0)
                dist = pred.new_zeros(())
                for lay, w in enumerate(weights):
                    err = (feats[lay].float() - teacher[:, lay]).pow(2).mean(dim=(1, 2))
                    dist = dist + w * (err * mask).sum() / denom
                total = total + beta * dist
            if gamma > 0:
                pick = torch.randint(0, unl.shape[0], (batch_size,))
                dev = batch[0].device
                ufeats = module.encoder(module.encoder_input(unl[pick].to(dev)))
                tp = target_pooled.to(dev)
                tpick = torch.randint(0, tp.shape[0], (batch_size,))
                total = total + gamma * _coral(ufeats[-1].float().mean(dim=1), tp[tpick])
            return total

        return loss

    def _build_module(self, ds: xr.Dataset, arrays: dict[str, np.ndarray]) -> nn.Module:
        n_cov = len(self.covariate_names_)
        head = _Head(int(self.width), n_cov)
        if self.variant == "satellite_only":
            return DeepSaltStudent(self._encoder(len(self.bands_)), head, None, None, n_cov)
        interp = interpolation_matrix(self.sat_wavelength_, self.lab_wavelength_)
        sau = SpectralAdaptationUnit(
            interp,
            self.input_stats_["spectra"],
            self.lab_wavelength_,
            n_basis=int(self.n_basis),
            learn=self.variant != "no_sau",
        )
        return DeepSaltStudent(
            self._encoder(len(self.lab_wavelength_)), head, sau, self.lab_stats_, n_cov
        )

    # -- interpretation ---------------------------------------------------------------------------

    def _lab_tensor(self, ds: xr.Dataset) -> Tensor:
        check_is_fitted(self, "module_")
        if self.teacher_ is None:
            raise ValueError(f"variant={self.variant!r} (beta={self.beta}) has no teacher.")
        wl = _wavelengths(ds, "the lab set")
        if wl.shape != self.lab_wavelength_.shape or not np.allclose(wl, self.lab_wavelength_):
            raise SchemaError(
                "the lab set's wavelength grid differs from the one the teacher was trained on. "
                "What to do: resample it onto model.lab_wavelength_."
            )
        return torch.from_numpy(_zscore(_spectra(ds, "the lab set"), self.lab_stats_))

    def training_histories(self) -> dict[str, History]:
        """Every training run of the last fit: ``{"teacher": teacher_history_, "student":
        history_}``, or ``{"student": history_}`` for the variants without a teacher
        (``"no_distillation"``, ``"satellite_only"``, or ``beta=0``). A teacher restored from a
        checkpoint gives its stored history (``resumed_from`` = its epochs). Raises
        :class:`sklearn.exceptions.NotFittedError` before :meth:`fit`."""
        check_is_fitted(self, "history_")
        out: dict[str, History] = {}
        if self.teacher_ is not None and self.teacher_history_ is not None:
            out["teacher"] = self.teacher_history_
        out["student"] = self.history_
        return out

    def _predict_teacher_scaled(self, ds_lab: xr.Dataset) -> np.ndarray:
        """The teacher's predictions on its training scale (after ``lab_target_transform``)."""
        x = self._lab_tensor(ds_lab)
        teacher = self.teacher_.to(self.device_).eval()
        parts = []
        with torch.no_grad():
            for s in range(0, x.shape[0], 1024):
                parts.append(teacher(x[s : s + 1024].to(self.device_)).float().cpu().numpy())
        out = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
        return out.astype(np.float64) * self.teacher_target_scale_ + self.teacher_target_mean_

    def predict_teacher(self, ds_lab: xr.Dataset) -> np.ndarray:
        """The teacher's predictions for lab spectra: ndarray (n_sample,) float64, in the lab
        target's **original** units (``expm1`` undone when ``lab_target_transform="log1p"``)."""
        out = self._predict_teacher_scaled(ds_lab)
        if getattr(self, "teacher_target_transform_", "none") == "log1p":
            return np.expm1(out)
        return out

    def teacher_scores(self, lab_test: xr.Dataset, include_seen: bool = False) -> dict[str, float]:
        """The teacher's skill on held-out lab spectra, in the original target units.

        Parameters
        ----------
        lab_test : lab spectra with a ``target`` on the teacher's lab grid (e.g. the lab rows
            of the held-out region's or the test fold's sites).
        include_seen : score rows of sites the teacher was trained on too (``teacher_sites_``);
            by default they are left out, so the scores are held-out scores.

        Returns
        -------
        dict
            :func:`soilbook.evaluate.metrics_table` of the scored rows — ``rmse``, ``mae``,
            ``bias`` (target units), ``r2``, ``ccc``, ``rpiq`` (unitless), ``n`` (rows scored) —
            plus ``n_excluded_seen`` (rows left out because the teacher saw their site).

        Raises ValueError for a variant without a teacher, a set without ``target``, or when
        no held-out row remains.
        """
        from soilbook.evaluate import metrics_table

        check_is_fitted(self, "module_")
        if self.teacher_ is None:
            raise ValueError(f"variant={self.variant!r} (beta={self.beta}) has no teacher.")
        if "target" not in lab_test.data_vars:
            raise SchemaError(
                "teacher_scores needs lab spectra with a 'target'. What to do: pass lab rows "
                "of the labelled lab set (e.g. lab.isel(sample=...))."
            )
        seen = np.zeros(lab_test.sizes[SAMPLE], dtype=bool)
        if not include_seen and "site" in lab_test.coords:
            seen = np.isin(lab_test["site"].values.astype(str), self.teacher_sites_)
        scored = lab_test.isel({SAMPLE: np.flatnonzero(~seen)})
        if scored.sizes[SAMPLE] == 0:
            raise ValueError(
                f"all {seen.size} lab rows belong to sites the teacher was trained on, so no "
                "held-out score can be computed. What to do: pass the lab rows of test sites "
                "(or include_seen=True for the training fit)."
            )
        out = metrics_table(target_values(scored), self.predict_teacher(scored))
        out["n_excluded_seen"] = float(seen.sum())
        return out

    def held_out_stage_scores(self) -> dict[str, dict[str, float]]:
        """The teacher's skill on the lab spectra of this fit's test data, for
        :func:`soilbook.evaluate.cross_validate` (``CVResult.stage_scores``, every fold and
        seed): ``{"teacher": teacher_scores(...)}`` on :func:`held_out_lab_rows` with a finite
        target (original units; ``n`` rows). Empty without a teacher or when the test data
        have no lab spectrum with a target."""
        check_is_fitted(self, "history_")
        if self.teacher_ is None or self.lab is None or "target" not in self.lab.data_vars:
            return {}
        lab_test = self.lab.isel({SAMPLE: self.teacher_held_out_rows_})
        finite = np.isfinite(np.asarray(lab_test["target"].values, dtype=float))
        lab_test = lab_test.isel({SAMPLE: np.flatnonzero(finite)})
        if lab_test.sizes[SAMPLE] == 0:
            return {}
        return {"teacher": self.teacher_scores(lab_test)}

    @torch.no_grad()
    def features(self, ds: xr.Dataset, which: str = "student", layer: int = -1) -> np.ndarray:
        """Token-averaged encoder features (n, width) of encoder layer ``layer``: the student's
        of satellite pixels (``which="student"``) or the teacher's of lab spectra
        (``which="teacher"``) — for the domain-gap PCA view."""
        if which == "student":
            tensors = [t.to(self.device_) for t in self.to_tensors(ds)]
            module = self.module_.to(self.device_).eval()
            cov = tensors[1] if module.n_covariates else None
            feats = module.forward_features(tensors[0], cov)[1]
        elif which == "teacher":
            x = self._lab_tensor(ds).to(self.device_)
            feats = self.teacher_.to(self.device_).eval().forward_features(x)[1]
        else:
            raise ParameterError(f"which={which!r}; allowed: 'student', 'teacher'.")
        return feats[layer].float().mean(dim=1).cpu().numpy()

    @torch.no_grad()
    def teacher_features_of_pixels(
        self, ds: xr.Dataset, adapted: bool = True, layer: int = -1
    ) -> np.ndarray:
        """The teacher's token-averaged features (n, width) of encoder layer ``layer`` for
        satellite pixels brought to the lab grid — by the trained SAU (``adapted=True``) or by
        its fixed interpolation alone (``adapted=False``) — and standardised with the lab
        statistics: how the teacher sees the pixels, for the domain-gap view before and after
        adaptation (compare with ``features(lab, which="teacher")``). Raises ValueError for a
        variant without a teacher."""
        check_is_fitted(self, "module_")
        if self.teacher_ is None:
            raise ValueError(f"variant={self.variant!r} (beta={self.beta}) has no teacher.")
        student = self.module_.to(self.device_).eval()
        if student.sau is None:
            raise ValueError(f"variant={self.variant!r} has no spectral adaptation unit.")
        x = self.to_tensors(ds)[0].to(self.device_)
        on_lab_grid = student.sau(x) if adapted else student.sau.interpolate(x)
        z = (on_lab_grid - student.lab_mean) / student.lab_std
        feats = self.teacher_.to(self.device_).eval().forward_features(z)[1]
        return feats[layer].float().mean(dim=1).cpu().numpy()

    def band_attributions(
        self,
        ds: xr.Dataset,
        which: str = "student",
        method: str = "integrated_gradients",
        steps: int = 32,
    ) -> xr.DataArray:
        """Integrated-gradients attribution of every input band (sample, wavelength), target units.

        Baseline: the training mean spectrum (0 after standardisation); ``steps`` Riemann
        midpoints. The attributions of a sample sum to ``f(x) − f(baseline)`` (completeness, up to
        the discretisation). ``which="student"`` explains :meth:`predict` on satellite pixels
        (over the satellite bands; covariates held at their values), ``"teacher"`` the teacher on
        lab spectra (over the lab grid). Units (``attrs["units"]``): those of the target the
        network was fitted on — ``log1p(…)`` when the student's target or the teacher's
        (``lab_target_transform="log1p"``) was log-transformed.
        """
        check_is_fitted(self, "module_")
        if method != "integrated_gradients":
            raise ParameterError(f"method={method!r}; allowed: 'integrated_gradients'.")
        if int(steps) < 1:
            raise ParameterError(f"steps={steps!r} must be >= 1.")
        if which == "student":
            tensors = self.to_tensors(ds)
            x, cov = tensors[0], (tensors[1] if self.covariate_names_ else None)
            module = self.module_.to(self.device_).eval()

            def f(inp: Tensor, sl: slice) -> Tensor:
                c = None if cov is None else cov[sl].to(self.device_)
                return module.forward_features(inp, c)[0]

            scale = self.target_scale_
            units = self.target_units_
            wl = self.sat_wavelength_
            if wl is None:
                wl = np.arange(len(self.bands_), dtype=float)
            bands = self.bands_
        elif which == "teacher":
            x = self._lab_tensor(ds)
            teacher = self.teacher_.to(self.device_).eval()

            def f(inp: Tensor, sl: slice) -> Tensor:
                return teacher(inp)

            scale = self.teacher_target_scale_
            units = self.teacher_target_units_
            wl = self.lab_wavelength_
            bands = [str(b) for b in ds["band"].values]
        else:
            raise ParameterError(f"which={which!r}; allowed: 'student', 'teacher'.")
        alphas = (torch.arange(int(steps), dtype=torch.float32) + 0.5) / int(steps)
        out = np.empty(tuple(x.shape), dtype=np.float64)
        bs = max(1, 2048 // int(steps))
        for s in range(0, x.shape[0], bs):
            sl = slice(s, s + bs)
            xb = x[sl].to(self.device_)
            grads = torch.zeros_like(xb)
            for a in alphas:
                inp = (a * xb).detach().requires_grad_(True)
                (g,) = torch.autograd.grad(f(inp, sl).sum(), inp)
                grads += g
            out[sl] = (xb * grads / int(steps)).double().cpu().numpy() * scale
        coords: dict[str, Any] = {
            "wavelength": np.asarray(wl, dtype=float),
            "band": ("wavelength", bands),
        }
        if SAMPLE in ds.coords:
            coords[SAMPLE] = ds[SAMPLE].values
        return xr.DataArray(
            out,
            dims=(SAMPLE, "wavelength"),
            coords=coords,
            name="attribution",
            attrs={
                "units": units,
                "long_name": f"integrated-gradients attribution ({which})",
                "baseline": "training mean spectrum",
            },
        )

    @property
    def sau_(self) -> xr.Dataset:
        """The SAU's band-wise ``gain`` and ``offset`` over the lab wavelength (xr.Dataset)."""
        check_is_fitted(self, "module_")
        sau = self.module_.sau
        if sau is None or not sau.learn:
            raise AttributeError(f"variant={self.variant!r} has no learned SAU.")
        wl = self.lab_wavelength_
        gain = torch.exp(sau.log_gain.detach()).cpu().numpy().astype(np.float64)
        offset = sau.offset.detach().cpu().numpy().astype(np.float64)
        return xr.Dataset(
            {
                "gain": ("wavelength", gain, {"units": "1", "long_name": "SAU band-wise gain"}),
                "offset": (
                    "wavelength",
                    offset,
                    {"units": "1", "long_name": "SAU band-wise offset (reflectance)"},
                ),
            },
            coords={"wavelength": ("wavelength", wl, {"units": "nm"})},
        )
