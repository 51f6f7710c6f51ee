"""The chapter modules and the catalogue: structure, the early checks, and the data entry points."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import soilbook.chapters
from soilbook import config, device
from soilbook.chapters import common, salinity, transfer
from soilbook.chapters.common import Chapter, Param
from soilbook.errors import ParameterError, SchemaError

REPO = Path(__file__).resolve().parents[1]
NB, NB2 = salinity.KEY, transfer.KEY


@pytest.fixture(autouse=True)
def in_notebooks_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validate from a scratch ``notebooks/`` folder, as a running notebook does."""
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")


# -- the catalogue -----------------------------------------------------------------------------


#: Modules of soilbook.chapters shared by the chapters (every other module is one chapter).
SHARED = {"common", "earthengine"}


def _chapter_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(soilbook.chapters.__path__)]
    return [n for n in names if n not in SHARED]


def test_every_chapter_module_is_in_the_catalogue():
    keys = []
    for name in _chapter_modules():
        module = importlib.import_module(f"soilbook.chapters.{name}")
        chapter = module.CHAPTER
        assert isinstance(chapter, Chapter), name
        assert config.CHAPTERS[chapter.key] is chapter, f"{name} is not listed in config.CHAPTERS"
        keys.append(chapter.key)
    assert sorted(keys) == sorted(config.CHAPTERS)
    assert list(config.CHAPTERS) == sorted(config.CHAPTERS), "book order = notebook order"


def test_every_notebook_has_a_chapter():
    stems = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert stems == sorted(config.CHAPTERS)
    assert config.NOTEBOOK_PARAMS == {k: c.params for k, c in config.CHAPTERS.items()}


def test_shared_parameters_are_defined_once():
    for chapter in config.CHAPTERS.values():
        names = [p.name for p in chapter.params]
        assert len(names) == len(set(names)), f"{chapter.key}: a parameter is declared twice"
        assert chapter.params[:3] == (common.SEED, common.DEVICE, common.PROFILE)
        out = chapter.params[3]
        assert out.name == "output_dir" and out.default == f"../_build/outputs/{chapter.key}"
        assert out.help == common.output_dir_param("x").help
    for shared in (common.SEED, common.DEVICE, common.PROFILE):
        assert all(shared in c.params for c in config.CHAPTERS.values())


def test_catalogue_api():
    assert config.chapter("01") is salinity.CHAPTER
    assert config.defaults("02") == transfer.CHAPTER.defaults()
    assert config.Param is Param
    assert config.notebook_key("notebooks/01_salinity_ss_soilnet.ipynb") == NB


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_layers_chapters_and_data_do_not_import_upwards():
    chapters = REPO / "soilbook" / "chapters"
    upper = (
        "soilbook.config",
        "soilbook.cli",
        "soilbook.run",
        "soilbook.book",
        "soilbook.notebook",
    )
    for path in chapters.glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(upper)}
        assert not bad, f"{path.name} imports a higher layer: {bad}"
    for path in (REPO / "soilbook" / "data").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("soilbook.chapters", "soilbook.config"))}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


# -- the generic Param check -------------------------------------------------------------------


def test_param_check_value():
    p = Param("rate", float, 0.1, "a rate", minimum=0.0, maximum=1.0)
    assert common.check_value(p, 1) == 1.0
    for bad, fragment in ((float("nan"), "not a finite"), (-0.5, "too small"), (2.0, "too large")):
        with pytest.raises(ParameterError, match=fragment):
            common.check_value(p, bad)
    choice = Param("kind", str, "a", "a kind", choices=("a", "b"))
    with pytest.raises(ParameterError, match=r"allowed: \['a', 'b'\]"):
        common.check_value(choice, "c")


@pytest.mark.parametrize(
    ("width", "heads", "near_heads", "near_widths"),
    [(32, 5, "4 or 8", "30 or 35"), (30, 4, "3 or 5", "28 or 32"), (8, 16, "8", "16")],
)
def test_heads_message_offers_the_nearest_valid_values(width, heads, near_heads, near_widths):
    with pytest.raises(ParameterError) as err:
        common.check_heads_divide_width(width, heads, min_width=4)
    assert f"heads {near_heads} (with width={width})" in str(err.value)
    assert f"width {near_widths} (with heads={heads})" in str(err.value)
    common.check_heads_divide_width(32, 4)


# -- chapter 1: capacity and memory -------------------------------------------------------------


def test_sample_capacity_is_what_the_sampler_draws():
    from soilbook.data.scene import sample_scene
    from soilbook.data.simulate.salinity import simulate_scene

    scene = simulate_scene(size=16, n_dates=1, seed=0)
    capacity = salinity.sample_capacity(16)
    assert sample_scene(scene, n_samples=capacity, window=3).sizes["sample"] == capacity
    with pytest.raises(ValueError, match="n_samples"):
        sample_scene(scene, n_samples=capacity + 1, window=3)


def test_too_many_samples_stop_before_the_notebook():
    with pytest.raises(ParameterError, match=r"at most 256 \(each pixel is sampled once\)"):
        config.validate_params(NB, {"scene_size": 16}, partial=True)
    with pytest.raises(ParameterError, match="n_samples <= 25600, or scene_size >= 317"):
        config.validate_params(NB, {"n_samples": 100_000}, partial=True)
    ok = config.validate_params(NB, {"scene_size": 16, "n_samples": 256}, partial=True)
    assert ok["n_samples"] == 256
    # other sources have no scene: n_samples is not used and not limited
    config.validate_params(NB, {"data_source": "limesoda", "scene_size": 16}, partial=True)


@pytest.mark.parametrize("n_dates", [1, 3])
def test_scene_bytes_match_the_simulator(n_dates):
    from soilbook.data.simulate.salinity import simulate_scene

    size = 32
    scene = simulate_scene(size=size, n_dates=n_dates, seed=0)
    per_pixel = sum(v.nbytes for v in scene.variables.values() if v.ndim >= 2) / size**2
    assert salinity.scene_bytes_per_pixel(n_dates) == pytest.approx(per_pixel, rel=0.02)


def test_huge_map_is_refused_with_a_memory_estimate():
    with pytest.raises(ParameterError, match=r"need about [\d,.]+ GiB of memory") as err:
        config.validate_params(NB, {"map_size": 1_000_000}, partial=True)
    assert "map_size <=" in str(err.value) and "is free on this machine" in str(err.value)


def test_memory_check_gives_the_largest_map_that_fits():
    p = salinity.CHAPTER.defaults() | {"map_size": 20_000}
    avail = 4 * 2**30
    with pytest.raises(ParameterError, match=r"only 4\.0 GiB is free") as err:
        salinity.check_memory(p, available=avail)
    best = int(str(err.value).split("map_size <= ")[1].split(" ")[0])
    args = {"n_dates": p["n_dates"], "width": p["width"], "window": p["window"]}
    assert salinity.memory_estimate(160, best, **args).total <= avail
    assert salinity.memory_estimate(160, best + 1, **args).total > avail
    salinity.check_memory(p | {"map_size": best}, available=avail)
    # a scene that alone does not fit: the advice is about scene_size
    with pytest.raises(ParameterError, match="use scene_size and map_size <="):
        salinity.check_memory(p | {"scene_size": 4000, "map_size": 4000}, available=avail)


def test_memory_estimate_grows_with_width_and_size():
    args = {"n_dates": 3, "window": 15}
    small = salinity.memory_estimate(160, 160, width=32, **args).total
    assert salinity.memory_estimate(160, 160, width=64, **args).total > small
    assert salinity.memory_estimate(160, 320, width=32, **args).total > small
    assert small < 2**30  # the quick profile needs well under a GiB


def test_available_memory_is_known_here():
    found = common.available_memory_bytes()
    assert found is None or found > 0


# -- the data entry points ---------------------------------------------------------------------


def test_salinity_load_data_delegates_to_sources():
    from soilbook.data import sources

    p = config.validate_params(
        NB, {"scene_size": 48, "n_samples": 40, "n_dates": 2, "window": 5}, partial=True
    )
    data = salinity.CHAPTER.load(p)
    again = sources.load("simulated", seed=0, scene_size=48, n_samples=40, n_dates=2, window=5)
    assert isinstance(data, sources.LoadedData) and data.scene is not None
    np.testing.assert_array_equal(data.samples["target"].values, again.samples["target"].values)


def test_transfer_regions_argument():
    p = transfer.CHAPTER.defaults()
    assert transfer.n_regions(p) == 5
    assert transfer.n_regions(p | {"target": "soc"}) is None
    assert transfer.n_regions(p | {"target": "soc", "lab_source": "file"}) == 5


# -- chapter 2: the user's lab file ------------------------------------------------------------

_LAB_HEADER = "site,lat,lon,target," + ",".join(f"refl_{w}" for w in range(400, 2451, 10))


def _lab_file(path: Path, content: bytes | str) -> str:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("nolabel.csv", "site,lat,lon,refl_400\n1,2,3,0.1\n", SchemaError, r"\['target'\]"),
        ("empty.csv", "", SchemaError, "is empty"),
        (
            "latin.csv",
            (_LAB_HEADER + "\n").encode()
            + b"".join(f"s{i},1,2,3".encode() + b",0.2" * 206 + b"\n" for i in range(20))
            + b"caf\xe9,1,2,3\n",
            SchemaError,
            r"not UTF-8 text: the byte 0xe9 .*\(line 22\)",
        ),
        ("empty.nc", b"", SchemaError, r"is empty \(0 bytes\)"),
    ],
)
def test_lab_file_problems_stop_before_the_notebook(tmp_path, name, content, error, message):
    path = _lab_file(tmp_path / name, content)
    with pytest.raises(error, match=message):
        config.validate_params(
            NB2, {"lab_source": "file", "data_path": path, "target": "salinity"}, partial=True
        )


def test_lab_file_folder_is_refused(tmp_path):
    (tmp_path / "spectra.csv").mkdir()
    with pytest.raises(ParameterError, match="is a folder"):
        config.validate_params(
            NB2,
            {"lab_source": "file", "data_path": str(tmp_path / "spectra.csv"), "target": "x"},
            partial=True,
        )


def test_cgroup_limit_counts_reclaimable_cache_as_free(tmp_path):
    (tmp_path / "memory.max").write_text(f"{8 * 2**30}\n")
    (tmp_path / "memory.current").write_text(f"{7 * 2**30}\n")
    (tmp_path / "memory.stat").write_text(f"anon 100\ninactive_file {2 * 2**30}\n")
    assert device._cgroup_free_bytes(tmp_path) == 3 * 2**30
    (tmp_path / "memory.max").write_text("max\n")
    assert device._cgroup_free_bytes(tmp_path) is None


# -- chapter 1: your own file, models, blocks (issue 7 §6) ---------------------------------------


def _field_csv(path: Path, n: int = 40, *, spectra: bool = True, **extra) -> str:
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "lat": 37.0 + rng.uniform(0, 0.5, n),
            "lon": 118.0 + rng.uniform(0, 0.5, n),
            "target": rng.gamma(2.0, 2.0, n),
            "terrain:slope": rng.uniform(0, 5, n),
            "soil:clay": rng.uniform(5, 40, n),
        }
    )
    if spectra:
        df["B04"], df["B08"] = rng.uniform(0.05, 0.2, n), rng.uniform(0.2, 0.5, n)
    for name, values in extra.items():
        df[name] = values
    df.to_csv(path, index=False)
    return str(path)


def _file_params(path: str, **more) -> dict:
    return {"data_source": "file", "data_path": path, **more}


def test_a_table_without_spectra_is_checked_and_goes_on_with_the_baselines(tmp_path):
    from soilbook.data.real.userfile import load_user_file

    path = _field_csv(tmp_path / "lab.csv", spectra=False)
    with pytest.warns(UserWarning, match="no spectral inputs.*RF and SVR only"):
        p = config.validate_params(NB, _file_params(path, target_units="dS/m"), partial=True)
    samples = salinity.load_data(p).samples
    assert samples["target"].attrs["units"] == "dS/m"
    available, skipped = salinity.models_for(samples)
    assert available == ["RF", "SVR"] and list(skipped) == list(salinity.NETWORK_FUSIONS)
    assert all(r.startswith("no spectral inputs") for r in skipped.values())
    text = salinity.models_message(available, skipped)
    assert text.startswith("Models trained: RF, SVR.") and "Skipped SS-SoilNet (concat)" in text
    full = load_user_file(_field_csv(tmp_path / "full.csv"))
    assert salinity.models_for(full) == (list(salinity.MODEL_NAMES), {})
    assert "SS-SoilNet" in salinity.NOTES and salinity.CHAPTER.notes == salinity.NOTES
    assert set(salinity.MODEL_NEEDS) == set(salinity.MODEL_NAMES)


def test_file_coordinates_and_folds_are_checked_before_the_notebook(tmp_path):
    n = 40
    metres = _field_csv(tmp_path / "utm.csv", n)
    import pandas as pd

    df = pd.read_csv(metres)
    df["lat"], df["lon"] = 4.1e6 + df["lat"] * 1e5, 5e5 + df["lon"] * 1e5
    df.to_csv(metres, index=False)
    with pytest.raises(SchemaError, match="not WGS84 degrees"):
        config.validate_params(NB, _file_params(metres), partial=True)
    xy = df.rename(columns={"lat": "y", "lon": "x"})
    xy_path = tmp_path / "xy.csv"
    xy.to_csv(xy_path, index=False)
    with pytest.raises(SchemaError, match="no crs"):
        config.validate_params(NB, _file_params(str(xy_path)), partial=True)
    with pytest.raises(ParameterError, match="pyproj knows"):
        config.validate_params(NB, _file_params(str(xy_path), crs="EPSG:0"), partial=True)
    p = config.validate_params(NB, _file_params(str(xy_path), crs="EPSG:32650"), partial=True)
    samples = salinity.load_data(p).samples
    assert "transformed" in samples.attrs["coordinate_source"] and "lat" in samples.coords
    grouped = _field_csv(tmp_path / "g.csv", n, group=np.arange(n) % 3)
    with pytest.raises(
        ParameterError, match=r"cv_folds=5 but g\.csv's 'group' column gives only 3"
    ):
        config.validate_params(NB, _file_params(grouped), partial=True)
    config.validate_params(NB, _file_params(grouped, cv_folds=3), partial=True)


def test_file_blocks_follow_block_size(tmp_path):
    path = _field_csv(tmp_path / "f.csv")
    with pytest.raises(ParameterError, match="smaller block_size"):
        config.validate_params(NB, _file_params(path, block_size=100_000), partial=True)
    p = config.validate_params(NB, _file_params(path, block_size=5000), partial=True)
    assert p["block_size"] == "5000" and salinity.block_size_m(p) == 5000.0
    samples = salinity.load_data(p).samples
    assert samples.attrs["block_size_m"] == 5000.0


def test_block_size_and_the_new_parameters_are_validated():
    assert salinity.block_size_m({"block_size": "auto"}) is None
    assert salinity.block_size_m({"block_size": " 400.5"}) == 400.5
    for bad in ("big", "-3", "0", "nan", "inf"):
        with pytest.raises(ParameterError, match="neither 'auto' nor a positive number"):
            config.validate_params(NB, {"block_size": bad}, partial=True)
    p = config.validate_params(NB, {"block_size": 400.0}, partial=True)
    assert p["block_size"] == "400"
    with pytest.raises(ParameterError, match="bool"):
        config.validate_params(NB, {"block_size": True}, partial=True)
    from soilbook.data import tables

    assert salinity.SPECTRA_KINDS == tables.SPECTRA_KINDS
    d = salinity.CHAPTER.defaults()
    assert (d["n_seeds"], d["n_jobs"], d["buffer_m"], d["block_size"]) == (3, 2, 0.0, "auto")
    assert (d["target_units"], d["crs"], d["spectra_kind"]) == ("", "", "auto")
    # a simulated scene: a numeric block size is checked against the folds, buffers too
    with pytest.raises(ParameterError, match=r"1600 m\) scene in 800 m blocks gives only 4"):
        config.validate_params(NB, {"block_size": 800}, partial=True)
    with pytest.raises(ParameterError, match="buffer_m=900 m is at least half"):
        config.validate_params(NB, {"buffer_m": 900}, partial=True)


def test_with_blocks_regroups_and_keeps_pedons_whole():
    from soilbook.data.schema import sample_set

    n = 12
    ds = sample_set(
        np.arange(n, dtype=float),
        groups=np.repeat(["p1", "p2", "p3"], 4),
        target_units="dS/m",
        target_long_name="EC",
        covariates=np.ones((n, 1), np.float32),
        features=[("depth", "soil")],
        covariate_units="cm",
        lat=np.r_[[37.0] * 3, 37.3, [37.001] * 4, [37.3] * 4],  # p1's 4th horizon: far off
        lon=np.r_[[118.0] * 3, 118.3, [118.001] * 4, [118.3] * 4],
        source="t",
        licence="CC0",
        citation="none",
        simulated=False,
        group_kind="pedon",
    )
    out = salinity.with_blocks(ds, 5000.0)
    groups = out["group"].values
    assert len(set(groups[:8])) == 1 and groups[8] != groups[0]  # pedon p1 stays whole
    assert (
        salinity.with_blocks(ds.assign_attrs(group_kind="spatial block"), 5000.0)["group"].values[3]
        == groups[8]
    )  # spatial blocks are simply recut
    assert out.attrs["group_kind"] == "spatial block" and out.attrs["block_size_m"] == 5000.0
    with pytest.raises(ParameterError, match="needs coordinates"):
        salinity.with_blocks(ds.drop_vars(["lat", "lon"]), 100.0)
