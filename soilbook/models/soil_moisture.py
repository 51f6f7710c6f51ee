"""Chapter 4's network as an estimator: a masked ConvNeXt V2 U-Net for surface soil moisture.

:class:`SoilMoistureRegressor` fits on a **sample set of station readings** (one sample per
reading: a station's 0–5 cm soil moisture in volumetric % at one tile's date, pointing into a
**tile set** with integer ``tile`` / ``row`` / ``col`` coordinates; see
:mod:`soilbook.data.schema`). The images themselves are a constructor argument, ``tiles``, like
SSL-SoilNet's unlabelled locations, so :func:`soilbook.evaluate.cross_validate` splits the
readings (by place = held-out tiles, or by station = held-out stations) and the estimator only
ever sees the labels of its training readings::

    net = SoilMoistureRegressor(tiles=data.tiles, inputs="all", intermediate=True)
    net.fit(readings_train)
    pred = net.predict(readings_test)       # (n_reading,) float64, volumetric %
    maps = net.predict_tiles(data.tiles)    # (n_tile, ny, nx) float32, volumetric %

What :meth:`SoilMoistureRegressor.fit` does, in order:

1. checks (cheap, before any array is built): the tile set, the readings pointing into it, the
   input set's modalities present in the tiles, tile sides that the network's strides allow;
2. **the tiles a fit may use**: every tile of a place (``location``) that has a training
   reading, plus every tile of a place that holds no station at all (coarse-label-only places,
   ``tiles["stations"] == 0`` or ``tiles["role"] == "coarse_only"``). A place with stations but no training reading is a test place:
   none of its tiles — inputs or coarse labels — is used (the same rule as SSL-SoilNet's
   pre-training, which never sees the inputs of test blocks);
3. per-channel standardisation with statistics of the **valid** pixels of those tiles; invalid
   pixels become 0 and stay marked invalid by their mask; one soil-moisture scale (the mean
   and standard deviation of the coarse product over those tiles, or of the training readings
   when there is no coarse product) standardises both labels;
4. **stage 1, intermediate task** (``intermediate=True``): the network is trained on the coarse
   product (``coarse`` with ``coarse_mask``) of the usable tiles with the dense masked loss
   (:class:`soilbook.train.DenseMaskedTask`), early-stopping on whole held-out places. The stage
   is checkpointed under its own key (the tiles used, the inputs, the network and stage-1
   settings, the seed — not the station labels), so the folds of a held-out-station split that
   use the same tiles train it once;
5. **stage 2, fine-tuning** on the station pixels of the training readings only (their label
   raster, :func:`soilbook.data.schema.label_rasters`), from the stage-1 weights or — the
   control, ``intermediate=False`` — from a random initialisation, early-stopping on the
   stations of whole held-out places.

Both stages record a :class:`~soilbook.train.History` (:meth:`training_histories`:
``{"intermediate": ..., "finetune": ...}``) whose convergence the evidence record reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from soilbook.data.moisture import INPUT_SETS, MODALITY_GROUPS, modality_channels
from soilbook.data.schema import (
    SAMPLE,
    TILE,
    label_rasters,
    reading_positions,
    validate_samples,
    validate_tiles,
)
from soilbook.errors import ParameterError, SchemaError
from soilbook.models.base import (
    NetworkRegressor,
    dataset_digest,
    inner_validation_split,
    load_weights,
)
from soilbook.models.convnext_unet import PRESETS, ConvNeXtUNet
from soilbook.train import DenseMaskedTask, History, TrainConfig, set_seed

__all__ = [
    "SoilMoistureRegressor",
]

#: The early-stopping split of a stage holds out whole places: at least this many tiles ...
INNER_MIN_TILES = 8
#: ... from at least this many places (a tile is a place at a date, so a place is 8-24 tiles;
#: the defaults of :func:`~soilbook.models.base.inner_validation_split`, 20 samples in 3 units,
#: would fall back to single tiles, whose other dates train).
INNER_MIN_PLACES = 2
#: Stage names, in training order.
STAGES = ("intermediate", "finetune")


class _FlatInputs(nn.Module):
    """Adapter for :func:`soilbook.train.fit`, whose batches are flat tensor lists: forward
    ``(x_1, m_1, …, x_k, m_k)`` (each modality's channels (n, c, H, W) and its validity mask
    (n, 1, H, W)) → the network's prediction map (n, H, W)."""

    def __init__(self, net: ConvNeXtUNet, modalities: Sequence[str], channels_last: bool = False):
        super().__init__()
        self.net = net
        self.modalities = tuple(modalities)
        self.channels_last = bool(channels_last)

    def forward(self, *flat: Tensor) -> Tensor:
        if self.channels_last and flat[0].is_cuda:
            flat = tuple(t.contiguous(memory_format=torch.channels_last) for t in flat)
        xs = {m: flat[2 * i] for i, m in enumerate(self.modalities)}
        ms = {m: flat[2 * i + 1] for i, m in enumerate(self.modalities)}
        pred, _ = self.net(xs, ms)
        return pred


def _int_ok(value: Any, low: int = 1) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= low


class SoilMoistureRegressor(NetworkRegressor):
    """The chapter-4 network (module docstring) as a scikit-learn regressor on station readings.

    Parameters
    ----------
    tiles : the tile set the readings point into (:func:`soilbook.data.schema.validate_tiles`),
        with ``coarse`` / ``coarse_mask`` for the intermediate stage and, optionally, a
        ``stations`` (tile) count of the stations at each tile's place, or a ``role`` (tile)
        that is ``"coarse_only"`` at places without stations (the simulator's); without
        either every place is taken to hold stations, so only the places of training readings
        are used.
    inputs : a key of :data:`soilbook.data.moisture.INPUT_SETS` (``"sar"``, ``"sar+optical+terrain"``, ``"all"``).
    intermediate : train stage 1 on the coarse product before fine-tuning on the stations
        (the paper's intermediate-task fine-tuning); False is the stations-only control.
    preset : the encoder size, a key of :data:`soilbook.models.convnext_unet.PRESETS`
        (``"tiny"`` for the CPU, ``"atto"`` … ``"nano"``).
    drop_path : stochastic-depth rate of the encoder blocks.
    intermediate_epochs, intermediate_learning_rate : the stage-1 run (its batch size, patience
        and the other settings are the fine-tuning ones).
    precision : ``"bf16"`` (bfloat16 autocast on CUDA; the CPU trains in float32) or ``"fp32"``.
    compile : :func:`torch.compile` the forward on CUDA (ignored on the CPU).
    channels_last : use the channels-last memory format on CUDA.
    (``epochs``, ``batch_size`` (tiles), ``learning_rate``, ``patience``, ``seed``, ``device``,
    ``checkpoint_dir``, … as in :class:`~soilbook.models.base.NetworkRegressor`.)

    Attributes
    ----------
    module_ : the fitted network (:class:`_FlatInputs` around a
        :class:`~soilbook.models.convnext_unet.ConvNeXtUNet`); history_,
        intermediate_history_ : the two runs; usable_tiles_ : positions of the tiles the fit
        used; channels_ : {modality: channel positions in ``tiles``}; target_mean_,
        target_scale_ : the soil-moisture scale (volumetric %).
    """

    _applies_init_weights = True

    def __init__(
        self,
        *,
        tiles: xr.Dataset | None = None,
        inputs: str = "all",
        intermediate: bool = True,
        preset: str = "tiny",
        drop_path: float = 0.0,
        intermediate_epochs: int = 40,
        intermediate_learning_rate: float = 2e-3,
        precision: str = "bf16",
        compile: bool = False,
        channels_last: bool = True,
        epochs: int = 60,
        batch_size: int = 16,
        learning_rate: float = 2e-3,
        patience: int = 8,
        val_fraction: float = 0.25,
        **kwargs: Any,
    ):
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            val_fraction=val_fraction,
            **kwargs,
        )
        self.tiles = tiles
        self.inputs = inputs
        self.intermediate = intermediate
        self.preset = preset
        self.drop_path = drop_path
        self.intermediate_epochs = intermediate_epochs
        self.intermediate_learning_rate = intermediate_learning_rate
        self.precision = precision
        self.compile = compile
        self.channels_last = channels_last

    def __sklearn_clone__(self) -> SoilMoistureRegressor:
        """A clone that **shares** ``tiles`` (and ``init_weights``): they are only read."""
        params = self.get_params(deep=False)
        shared = {name: params.pop(name) for name in ("tiles", "init_weights")}
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, **shared)

    # -- settings and checks ------------------------------------------------------------------------

    def _check_params(self) -> None:
        super()._check_params()
        name = type(self).__name__
        if self.inputs not in INPUT_SETS:
            raise ParameterError(f"{name}: inputs={self.inputs!r}; allowed: {list(INPUT_SETS)}.")
        if self.preset not in PRESETS:
            raise ParameterError(f"{name}: preset={self.preset!r}; allowed: {list(PRESETS)}.")
        if self.precision not in ("bf16", "fp32"):
            raise ParameterError(f"{name}: precision={self.precision!r}; allowed: bf16, fp32.")
        if not _int_ok(self.intermediate_epochs):
            raise ParameterError(
                f"{name}: intermediate_epochs={self.intermediate_epochs!r} must be an int >= 1."
            )
        if not (isinstance(self.drop_path, float | int) and 0 <= float(self.drop_path) < 1):
            raise ParameterError(f"{name}: drop_path={self.drop_path!r} must be in [0, 1).")
        if not float(self.intermediate_learning_rate) > 0:
            raise ParameterError(
                f"{name}: intermediate_learning_rate={self.intermediate_learning_rate!r} must "
                "be > 0."
            )
        if not isinstance(self.tiles, xr.Dataset):
            raise ParameterError(
                f"{name}: tiles must be the tile set the readings point into (an "
                f"xarray.Dataset); got {type(self.tiles).__name__}. What to do: pass "
                "tiles=data.tiles."
            )

    def _modalities(self) -> tuple[str, ...]:
        return INPUT_SETS[self.inputs]

    def _channels(self) -> dict[str, list[int]]:
        """Each modality's channel positions in ``tiles``; raises when one has none."""
        groups = [str(g) for g in self.tiles["channel_group"].values]
        out = {}
        for m in self._modalities():
            idx = modality_channels(self.tiles, m)
            if not idx:
                raise SchemaError(
                    f"inputs={self.inputs!r} needs the {m} modality (channel groups "
                    f"{list(MODALITY_GROUPS[m])}), but the tile set has channel groups "
                    f"{sorted(set(groups))}. What to do: choose an input set the tiles carry."
                )
            out[m] = idx
        return out

    def _check_data(self, ds: xr.Dataset) -> None:
        validate_samples(ds)
        tiles = validate_tiles(self.tiles)
        reading_positions(ds, tiles)
        self._channels()
        stride = 32
        for dim in ("y", "x"):
            if tiles.sizes[dim] % stride:
                raise ParameterError(
                    f"the tiles are {tiles.sizes['y']} x {tiles.sizes['x']} pixels; the "
                    f"encoder halves them four times after a stride-4 stem, so each side must "
                    f"be a multiple of {stride}. What to do: crop or pad the tiles (e.g. to "
                    f"{stride * max(1, tiles.sizes[dim] // stride)})."
                )
        if self.intermediate and "coarse" not in tiles.data_vars:
            raise SchemaError(
                "intermediate=True needs a dense coarse label ('coarse' with 'coarse_mask') in "
                "the tile set. What to do: add it, or use intermediate=False."
            )

    def _train_config(self, checkpoint_dir: Path | None = None) -> TrainConfig:
        cfg = super()._train_config(checkpoint_dir)
        cfg.amp = self.precision == "bf16"
        cfg.compile = bool(self.compile)
        return cfg

    # -- data ---------------------------------------------------------------------------------------

    def usable_tiles(self, ds: xr.Dataset) -> np.ndarray:
        """Positions of the tiles a fit on the readings ``ds`` may use (module docstring, step
        2): the places of its readings, and places without stations."""
        places = np.asarray(self.tiles["location"].values).astype(str)
        tile_of = reading_positions(ds, self.tiles)[0]
        train_places = set(places[tile_of])
        if "stations" in self.tiles.coords:
            no_station = np.asarray(self.tiles["stations"].values) == 0
        elif "role" in self.tiles.coords:  # the simulator's "stations" / "coarse_only"
            no_station = np.asarray(self.tiles["role"].values).astype(str) == "coarse_only"
        else:  # nothing says so: every place is taken to hold stations
            no_station = np.zeros(places.size, dtype=bool)
        return np.flatnonzero(np.isin(places, list(train_places)) | no_station)

    def _raw(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`_raw_of` the tiles at positions ``rows``."""
        return self._raw_of(self.tiles["inputs"].values[rows], self.tiles["valid"].values[rows])

    def _raw_of(self, inputs: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
        """Each modality's channels (n, c, H, W) and any-valid mask (n, 1, H, W), float32, of
        raw tiles (n, channel, H, W) and their masks; invalid values as NaN."""
        x = np.asarray(inputs, dtype=np.float32)
        v = np.asarray(valid).astype(bool)
        out = {}
        for m, idx in self.channels_.items():
            xm = np.where(v[:, idx], x[:, idx], np.nan).astype(np.float32)
            out[m] = xm
            out[f"{m}_mask"] = v[:, idx].any(axis=1, keepdims=True).astype(np.float32)
        return out

    def _fit_tile_stats(self, raw: dict[str, np.ndarray]) -> None:
        """``input_names_`` (the modalities) and ``input_stats_`` {modality: (mean, std)}, each
        (1, c, 1, 1) float32, over the valid pixels of the raw training tiles ``raw``."""
        self.input_names_ = list(self.channels_)
        self.input_stats_ = {}
        for m in self.channels_:
            arr = raw[m].astype(np.float64)
            with np.errstate(all="ignore"):
                mean = np.nanmean(arr, axis=(0, 2, 3), keepdims=True)
                std = np.nanstd(arr, axis=(0, 2, 3), keepdims=True)
            mean = np.where(np.isfinite(mean), mean, 0.0)
            std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
            self.input_stats_[m] = (mean.astype(np.float32), std.astype(np.float32))

    def _tensors(self, rows: np.ndarray) -> list[Tensor]:
        """:meth:`_tensors_of` the tiles at positions ``rows``."""
        return self._tensors_of(self.tiles["inputs"].values[rows], self.tiles["valid"].values[rows])

    def _tensors_of(self, inputs: np.ndarray, valid: np.ndarray) -> list[Tensor]:
        """The flat standardised inputs ``[x_1, m_1, …]`` of raw tiles; a pixel is invalid for a
        modality when none of its channels is valid, and any single invalid channel value is
        set to 0 (its mean) too."""
        raw = self._raw_of(inputs, valid)
        out = []
        for m in self.channels_:
            mean, std = self.input_stats_[m]
            x = np.nan_to_num((raw[m] - mean) / std, nan=0.0).astype(np.float32)
            mask = raw[f"{m}_mask"]
            out += [torch.from_numpy(x * mask), torch.from_numpy(mask)]
        return out

    def _fit_moisture_scale(self, rows: np.ndarray, y_raw: np.ndarray) -> None:
        """``target_mean_`` / ``target_scale_`` (volumetric %): the mean and standard deviation
        of the coarse product over the labelled pixels of the usable tiles ``rows`` when the
        tile set has one (so every network on these tiles, with or without the intermediate
        stage, uses the same scale, and a stage-1 run depends on the tiles only — the folds
        that share their tiles share it), else of the training readings ``y_raw``."""
        if "coarse" in self.tiles.data_vars:
            mask = np.asarray(self.tiles["coarse_mask"].values[rows]).astype(bool)
            values = np.asarray(self.tiles["coarse"].values[rows], dtype=np.float64)[mask]
            if values.size:
                self.target_mean_ = float(values.mean())
                scale = float(values.std())
                self.target_scale_ = scale if scale > 1e-12 else 1.0
                return
        self._fit_target_scale(y_raw)

    def _split_by_place(self, rows: np.ndarray) -> Any:
        """The early-stopping split of the tiles ``rows`` by whole places
        (:func:`inner_validation_split` on a view with ``group`` = the tile's place, at least
        :data:`INNER_MIN_TILES` tiles of :data:`INNER_MIN_PLACES` places)."""
        view = xr.Dataset(
            coords={"group": (SAMPLE, np.asarray(self.tiles["location"].values)[rows])}
        )
        return inner_validation_split(
            view,
            float(self.val_fraction),
            int(self.seed),
            min_val_samples=INNER_MIN_TILES,
            min_units=INNER_MIN_PLACES,
        )

    def _network(self) -> _FlatInputs:
        channels = {m: len(idx) for m, idx in self.channels_.items()}
        net = ConvNeXtUNet(channels, preset=self.preset, drop_path=float(self.drop_path))
        cuda = getattr(self, "device_", torch.device("cpu")).type == "cuda"
        if self.channels_last and cuda:
            net = net.to(memory_format=torch.channels_last)
        return _FlatInputs(net, list(channels), channels_last=bool(self.channels_last) and cuda)

    # -- fitting ------------------------------------------------------------------------------------

    def _intermediate_key(self, rows: np.ndarray) -> str:
        params = self.get_params(deep=False)
        keep = ("inputs", "preset", "drop_path", "intermediate_epochs", "batch_size", "seed")
        return self._stage_key(
            "SoilMoistureIntermediate",
            "intermediate",
            {k: params[k] for k in keep},
            tiles=dataset_digest(self.tiles),
            rows=hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest(),
            lr=float(self.intermediate_learning_rate),
            patience=int(self.patience),
            val_fraction=float(self.val_fraction),
        )

    def _run_intermediate(self, rows: np.ndarray, tensors: list[Tensor]) -> None:
        """Stage 1 on the coarse label of the tiles ``rows`` (their standardised ``tensors``)."""
        coarse = np.asarray(self.tiles["coarse"].values[rows], dtype=np.float64)
        cmask = np.asarray(self.tiles["coarse_mask"].values[rows]).astype(np.float32)
        label = np.where(cmask > 0, (coarse - self.target_mean_) / self.target_scale_, 0.0)
        split = self._split_by_place(rows)
        self.intermediate_inner_split_ = split
        key = self._intermediate_key(rows)
        folder = self._stage_folder(key, "intermediate stage's checkpoint folder")
        cfg = self._train_config(folder)
        cfg.epochs = int(self.intermediate_epochs)
        cfg.learning_rate = float(self.intermediate_learning_rate)
        cfg.min_epochs = min(int(self.min_epochs), cfg.epochs)
        set_seed(int(self.seed))
        net = self._network()
        self.intermediate_history_ = self._train_stage(
            "intermediate",
            {"key": key},
            net,
            [*tensors, torch.from_numpy(label.astype(np.float32)), torch.from_numpy(cmask)],
            None,
            split,
            cfg,
            task=DenseMaskedTask(),
        )
        self.intermediate_state_ = {
            k: v.detach().cpu().clone() for k, v in net.state_dict().items()
        }

    def fit(self, ds: xr.Dataset, y: Any = None) -> SoilMoistureRegressor:
        """Fit on the training readings ``ds`` (module docstring: checks, usable tiles,
        statistics, stage 1 on the coarse product, stage 2 on the training stations)."""
        self._check_params()
        self._check_data(ds)
        config, y_raw = self._start_fit(ds, y)
        self.channels_ = self._channels()
        self.modalities_ = list(self.channels_)
        rows = self.usable_tiles(ds)
        self.usable_tiles_ = rows
        self._fit_tile_stats(self._raw(rows))
        self._fit_moisture_scale(rows, y_raw)
        tensors = self._tensors(rows)
        self.intermediate_history_ = None
        self.intermediate_state_ = None
        if self.intermediate:
            self._run_intermediate(rows, tensors)
        # stage 2: station pixels of the training readings, on the tiles that hold them
        y_std = (y_raw - self.target_mean_) / self.target_scale_
        label, mask = label_rasters(ds, self.tiles, y_std)
        with_label = rows[mask[rows].reshape(rows.size, -1).any(axis=1)]
        pos = np.searchsorted(rows, with_label)
        stage2 = [t[torch.from_numpy(pos)] for t in tensors]
        stage2 += [torch.from_numpy(label[with_label]), torch.from_numpy(mask[with_label])]
        split = self._split_by_place(with_label)
        self.inner_split_ = split
        self.n_train_, self.n_val_ = int(split.train.size), int(split.val.size)
        set_seed(int(self.seed))
        self.module_ = self._network()
        if self.intermediate_state_ is not None:
            load_weights(self.module_, self.intermediate_state_, what="the stage-1 weights")
        else:
            self._apply_init_weights(self.module_)
        self.history_: History = self._train(
            self.module_,
            stage2,
            None,
            split,
            config,
            {**self._run_key(), "stage": "finetune"},
            task=DenseMaskedTask(),
        )
        self.module_.eval()
        return self

    def _run_key(self) -> dict[str, Any]:
        key = super()._run_key()
        key["params"]["tiles"] = repr(dict(self.tiles.sizes))
        if self.intermediate_state_ is not None:
            from soilbook.models.base import weights_digest

            key["stage1"] = weights_digest(self.intermediate_state_)
        return key

    # -- prediction ---------------------------------------------------------------------------------

    @torch.no_grad()
    def predict_tiles(self, tiles: xr.Dataset | None = None, batch_size: int = 16) -> np.ndarray:
        """Dense predictions (n_tile, ny, nx) float32 in volumetric % for every tile of
        ``tiles`` (default: the fitted tile set), in batches of ``batch_size`` tiles; NaN where
        no input modality is valid."""
        check_is_fitted(self, "module_")
        if tiles is not None and tiles is not self.tiles:
            if list(tiles["channel"].values) != list(self.tiles["channel"].values):
                raise SchemaError(
                    f"the tiles have channels {list(tiles['channel'].values)}; the network was "
                    f"fitted on {list(self.tiles['channel'].values)}. What to do: give the same "
                    "channels in the same order."
                )
            other = clone(self).set_params(tiles=validate_tiles(tiles))
            fitted = ("module_", "channels_", "modalities_", "input_stats_", "target_mean_")
            for name in (*fitted, "target_scale_"):
                setattr(other, name, getattr(self, name))
            other.device_ = self.device_
            return other.predict_tiles(None, batch_size)
        n = self.tiles.sizes[TILE]
        out = np.empty((n, self.tiles.sizes["y"], self.tiles.sizes["x"]), dtype=np.float32)
        x_all, v_all = self.tiles["inputs"].values, self.tiles["valid"].values
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            out[rows] = self.predict_array(x_all[rows], v_all[rows])
        return out

    @torch.no_grad()
    def predict_array(self, inputs: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Dense predictions (n, H, W) float32 in volumetric % for raw tiles ``inputs``
        (n, channel, H, W) with their ``valid`` masks (same shape), in the channel layout of the
        fitted ``tiles``; NaN where no input modality is valid. H and W must be multiples of 32
        (:func:`soilbook.maps.predict_area` pads windows for it)."""
        check_is_fitted(self, "module_")
        x = np.asarray(inputs, dtype=np.float32)
        v = np.asarray(valid).astype(bool)
        if x.ndim != 4 or v.shape != x.shape or x.shape[1] != self.tiles.sizes["channel"]:
            raise ParameterError(
                f"inputs {x.shape} and valid {v.shape} must both be (n, "
                f"{self.tiles.sizes['channel']}, H, W), the fitted tile set's channels."
            )
        flat = [t.to(self.device_) for t in self._tensors_of(x, v)]
        self.module_.eval().to(self.device_)
        xs = {m: flat[2 * i] for i, m in enumerate(self.modalities_)}
        ms = {m: flat[2 * i + 1] for i, m in enumerate(self.modalities_)}
        pred, ok = self.module_.net(xs, ms)
        pred = pred.float().cpu().numpy() * self.target_scale_ + self.target_mean_
        return np.where(ok.cpu().numpy() > 0, pred, np.nan).astype(np.float32)

    @torch.no_grad()
    def predict(self, ds: xr.Dataset) -> np.ndarray:
        """The predicted soil moisture (n_reading,) float64, volumetric %, at each reading's
        pixel (only the tiles the readings point to are run)."""
        check_is_fitted(self, "module_")
        validate_samples(ds)
        t, r, c = reading_positions(ds, self.tiles)
        needed = np.unique(t)
        sub = self.tiles.isel({TILE: needed})
        maps = self.predict_tiles(sub) if needed.size < self.tiles.sizes[TILE] else None
        if maps is None:
            maps = self.predict_tiles()
            return maps[t, r, c].astype(np.float64)
        return maps[np.searchsorted(needed, t), r, c].astype(np.float64)

    def training_histories(self) -> dict[str, History]:
        """``{"intermediate": ..., "finetune": ...}`` (or ``{"finetune": ...}`` without stage
        1). Raises NotFittedError before fit."""
        check_is_fitted(self, "history_")
        out: dict[str, History] = {}
        if self.intermediate_history_ is not None:
            out["intermediate"] = self.intermediate_history_
        out["finetune"] = self.history_
        return out
