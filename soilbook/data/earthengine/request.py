"""A composed request — what a recipe builds — and the generic steps every recipe shares.

A recipe (:mod:`.recipes`) composes layers into one image, samples it at points in batches and
returns a :class:`Request`: the ``ee`` computations plus everything :func:`~.convert.to_samples`
needs to read the answers back (bands, covariates and patch layers with their feature groups,
the target's name and units, the collections read). :func:`extract` sends it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from soilbook.data.earthengine.checks import points_bbox
from soilbook.data.earthengine.convert import to_samples
from soilbook.data.earthengine.sampling import download
from soilbook.errors import ParameterError

#: Margin (m) added around the points' box beyond half a patch, so that focal filters (tpi)
#: and bilinear resampling see data at the box's edges.
REGION_MARGIN_M = 1000.0


@dataclass(frozen=True)
class Request:
    """A composed request, and everything :func:`~.convert.to_samples` needs to read it.

    ``image`` holds every band that is sampled (reflectance ``<band>_t<i>``, covariates, and
    patch arrays ``patch_<layer>``); ``batches`` are the ``ee.FeatureCollection`` requests, one
    per chunk of ``points``; ``covariates`` and ``patch_layers`` map each name to its feature
    group; ``target_name`` / ``target_units`` say what the points' measured value is;
    ``params`` are the choices that made the request (stored as dataset attributes).
    """

    image: Any
    batches: tuple[Any, ...]
    points: tuple[dict[str, Any], ...]
    dates: tuple[tuple[str, str], ...]
    bands: tuple[str, ...]
    covariates: dict[str, str]
    patch_layers: dict[str, str]
    window: int | None
    scale: float
    crs: str
    batch_size: int
    collections: tuple[str, ...]
    target_name: str
    target_units: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_samples(
        self, features: Any, points: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> xr.Dataset:
        """:func:`~.convert.to_samples` of this request's ``getInfo()`` results (``points``
        carry the targets); ``kwargs`` (``target_key``, ``group_key``, ...) go to it."""
        args: dict[str, Any] = {
            "dates": self.dates,
            "covariates": self.covariates,
            "patch_layers": self.patch_layers,
            "points": points,
            "scale": self.scale,
            "target_name": self.target_name,
            "target_units": self.target_units,
            "collections": self.collections,
            "extra_attrs": {**self.params, "crs": self.crs},
        }
        return to_samples(features, self.bands, **{**args, **kwargs})


def extract(
    request: Request,
    points: Sequence[Mapping[str, Any]],
    *,
    target_key: str = "target",
    group_key: str | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> xr.Dataset:
    """Send ``request`` batch by batch (``getInfo``; needs a live session) and convert the
    answers with the targets of ``points`` (:meth:`Request.to_samples`); with ``cache_dir``
    the answers are kept batch by batch and a rerun resumes (:func:`~.sampling.download`)."""
    features = download(request.batches, progress=progress, cache_dir=cache_dir)
    return request.to_samples(features, points, target_key=target_key, group_key=group_key)


def choose_patch_layers(
    window: int | None, patch_layers: Sequence[str] | None, available: Sequence[str]
) -> list[str]:
    """The layers to cut patches from: none without a ``window``, all ``available`` layers by
    default, else ``patch_layers`` (each one of ``available``)."""
    if window is None:
        return []
    if patch_layers is None:
        return list(available)
    layers = list(patch_layers)
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise ParameterError(
            f"patch_layers {unknown} are not among the environmental layers "
            f"{list(available)}. Pick from those (dated layers end in _t<window index>)."
        )
    if not layers:
        raise ParameterError("patch_layers is empty; pass window=None for no patches.")
    return layers


def request_region(
    pts: Sequence[Mapping[str, Any]], window: int | None, scale: float
) -> tuple[float, float, float, float]:
    """The box a request reads: the points' box widened by half a patch (``window // 2 *
    scale`` metres) plus :data:`REGION_MARGIN_M`."""
    margin = (window // 2 if window else 0) * scale + REGION_MARGIN_M
    return points_bbox(pts, margin_m=margin)
