"""One pixel of a joint analysis fitted again: ``Analysis.fit_pixel``, ``plot_pixel``,
``parfit inspect --pixel`` and ``fit_request`` with mappings of datasets.

The analysis folder is the one of ``test_config_joint`` (co10 with its spectral axis
first, co21 on another spectral grid with its spectral axis last, sharing centre and
width), with one pixel of co21 blanked: there co21 has no valid sample and the pixel is
fitted on co10 alone (flag ``DATASET_MISSING``).
"""

import json

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from matplotlib.figure import Figure
from test_config_joint import JOINT, SHAPE, V10, V21, parfit_cmd, write_pair

from parfit.analysis import Analysis
from parfit.cli import main
from parfit.diagnostics import FitPanel, plot_fits
from parfit.engine.units import UnitsPlan
from parfit.errors import InputError, InputTypeError
from parfit.fit import fit_request
from parfit.joint import JointPlan
from parfit.models import Gaussian1D, JointModel
from parfit.status import Flag, Status

PIXEL = (3, 5)
BLANK = (2, 4)  # co21 has no valid sample here
SAMPLES = {"co10": len(V10), "co21": len(V21)}
PNG = b"\x89PNG\r\n\x1a\n"
PER_DATASET = ("x", "data", "start", "fitted", "x_unit", "data_unit")


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    """The folder, the result of the run (in this process) and the analysis read back."""
    folder = tmp_path_factory.mktemp("joint-pixel")
    write_pair(folder)
    with fits.open(folder / "co21.fits", mode="update") as hdul:
        hdul[0].data[BLANK] = np.nan  # co21 is (y, x, spectral)
    (folder / "fit.yaml").write_text(JOINT)
    result = Analysis.from_yaml(folder / "fit.yaml").run()
    return folder, result, Analysis.read(folder / "results")


def pixel_values(model, pixel):
    """A fitted model's parameter values at ``pixel``, as one row."""
    return np.array([[np.asarray(getattr(model, p).value)[pixel] for p in model.param_names]])


def test_fit_pixel_gives_each_datasets_samples_and_fit(joint):
    folder, result, analysis = joint
    fit = analysis.fit_pixel(PIXEL)
    assert set(fit) == {"pixel", "datasets", "status", "flags", "parameters", *PER_DATASET}
    assert fit["pixel"] == PIXEL and fit["datasets"] == ("co10", "co21")
    assert fit["status"] == Status.OK and fit["flags"] == Flag(0)
    for key in PER_DATASET:
        assert list(fit[key]) == ["co10", "co21"], key
    for name, n in SAMPLES.items():
        for key in ("x", "data", "start", "fitted"):
            assert fit[key][name].shape == (n,), (key, name)
        assert fit["x_unit"][name] == "km / s" and fit["data_unit"][name] == "K"
    # Each dataset's own samples: its world grid (co21's header is in m/s) and its cube.
    np.testing.assert_allclose(fit["x"]["co10"], V10, rtol=1e-9)
    np.testing.assert_allclose(fit["x"]["co21"], V21, rtol=1e-9)
    np.testing.assert_array_equal(fit["data"]["co10"], fits.getdata(folder / "co10.fits")[:, 3, 5])
    np.testing.assert_array_equal(fit["data"]["co21"], fits.getdata(folder / "co21.fits")[3, 5])
    # The maps' values, in their joint names; the shared centre under both names.
    assert list(fit["parameters"]) == list(result.param_names)
    for name, value in fit["parameters"].items():
        assert value == pytest.approx(result.parameters[name][PIXEL], rel=1e-9), name
    assert fit["parameters"]["co21.mean_0"] == fit["parameters"]["co10.mean_0"]
    # The fit is the stored model of each dataset at that pixel, on that dataset's x.
    for name, model in result.models.items():
        expected = model.evaluate(fit["x"][name], pixel_values(model, PIXEL)).ravel()
        np.testing.assert_allclose(fit["fitted"][name], expected, rtol=1e-9, atol=1e-12)
        assert np.std(fit["data"][name] - fit["fitted"][name]) < 0.2  # noise 0.1 and 0.12
    # co21's centre is tied to co10's: its start curve peaks where co10's does.
    peaks = {name: fit["x"][name][np.argmax(fit["start"][name])] for name in SAMPLES}
    assert abs(peaks["co21"] - peaks["co10"]) <= 2.5  # co21's channel width


def test_a_dataset_blank_at_the_pixel_has_no_fit(joint):
    folder, result, analysis = joint
    fit = analysis.fit_pixel(BLANK)
    assert fit["status"] == Status.OK and fit["flags"] & Flag.DATASET_MISSING
    assert fit["fitted"]["co21"] is None
    assert fit["fitted"]["co10"].shape == (SAMPLES["co10"],)
    assert fit["data"]["co21"].shape == (SAMPLES["co21"],)
    assert np.isnan(fit["data"]["co21"]).all()
    assert np.isfinite(fit["data"]["co10"]).all()
    for name, value in fit["parameters"].items():
        stored = result.parameters[name][BLANK]
        if name in ("co21.amplitude_0", "co21.amplitude_1"):  # only co21 determines them
            assert np.isnan(value) and np.isnan(stored), name
        else:
            assert value == pytest.approx(stored, rel=1e-9), name
    co10 = result.models["co10"]
    expected = co10.evaluate(fit["x"]["co10"], pixel_values(co10, BLANK)).ravel()
    np.testing.assert_allclose(fit["fitted"]["co10"], expected, rtol=1e-9, atol=1e-12)


def test_fit_pixel_of_a_joint_folder_refuses_pixels_outside_the_maps(joint):
    _, _, analysis = joint
    with pytest.raises(
        InputError, match=r"pixel \(8, 0\) is outside the maps, whose shape is \(8, 9\)"
    ):
        analysis.fit_pixel((8, 0))
    with pytest.raises(InputError, match=r"pixel must have 2 indices \(one per iterating axis\)"):
        analysis.fit_pixel((1, 2, 3))


@pytest.fixture
def figures(monkeypatch):
    """The figures written while the test runs."""
    drawn = []
    save = Figure.savefig

    def record(self, *args, **kwargs):
        drawn.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return drawn


def png_size(path):
    """Width and height of a PNG, from its header."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_plot_pixel_draws_a_panel_per_dataset(joint, tmp_path, figures):
    _, _, analysis = joint
    fit = analysis.fit_pixel(BLANK)
    out = analysis.plot_pixel(BLANK, tmp_path / "pixel.png", fit=fit)
    assert out == tmp_path / "pixel.png"
    assert 20_000 < out.stat().st_size < 1_000_000
    width, height = png_size(out)
    assert width > 1.5 * height  # the datasets side by side
    (fig,) = figures
    assert len(fig.axes) == 4  # per dataset: the fit and its residuals
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2
    assert titles[0].startswith("co10 [K]\namplitude_0=")
    assert titles[1] == "co21 [K]: no valid sample, not fitted"
    assert fig.get_suptitle() == f"pixel {BLANK}"
    # Without fit=: fitted again, the same figure.
    assert analysis.plot_pixel(PIXEL, tmp_path / "again.png").read_bytes()[:8] == PNG
    assert [ax.get_title().split("\n")[0] for ax in figures[1].axes[::2]] == [
        "co10 [K]",
        "co21 [K]",
    ]


def test_plot_fits_refuses_what_is_not_panels(tmp_path):
    with pytest.raises(
        InputError, match="plot_fits: panels must be a non-empty sequence of FitPanel"
    ):
        plot_fits(tmp_path / "x.png", [])
    with pytest.raises(
        InputError, match="plot_fits: panels must be a non-empty sequence of FitPanel"
    ):
        plot_fits(tmp_path / "x.png", [{"x": [1.0], "data": [1.0]}])
    with pytest.raises(
        InputError, match=r"plot_fits: panel 1 \('b'\): fitted has 2 values but x 3"
    ):
        plot_fits(
            tmp_path / "x.png",
            [
                FitPanel([0, 1, 2], [0, 1, 0], title="a"),
                FitPanel([0, 1, 2], [0, 1, 0], fitted=[1, 2], title="b"),
            ],
        )
    assert not (tmp_path / "x.png").exists()


def test_inspect_pixel_prints_each_dataset(joint):
    folder, result, _ = joint
    out = parfit_cmd("inspect", "results", "--pixel", "2,4", cwd=folder)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = lines.index("pixel (2, 4): OK (flags DATASET_MISSING)")
    co10, co21 = lines[at + 1 : at + 3]
    assert co10.startswith("  co10 (41 samples, data in K, x in km / s): amplitude_0=")
    assert co21.startswith(
        "  co21 (33 samples, data in K, x in km / s; no valid sample here, not fitted): "
        "amplitude_0=nan, mean_0="
    )
    values = dict(item.split("=") for item in co10.split(": ", 1)[1].split(", "))
    assert set(values) == {"amplitude_0", "mean_0", "stddev_0", "amplitude_1"}
    for name, value in values.items():
        assert float(value) == pytest.approx(result.parameters[f"co10.{name}"][BLANK], rel=1e-5)
    assert lines[at + 3] == "wrote results/plots/pixel_2_4.png"
    assert (folder / "results" / "plots" / "pixel_2_4.png").read_bytes()[:8] == PNG


def test_inspect_pixel_json_has_each_dataset(joint):
    folder, result, _ = joint
    target = folder / "results"
    out = CliRunner().invoke(main, ["inspect", str(target), "--pixel", "3,5", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)  # stdout is the JSON alone
    assert summary["status_counts"] == {"OK": SHAPE[0] * SHAPE[1]}
    pixel = summary["pixel"]
    assert pixel["pixel"] == [3, 5] and pixel["status"] == "OK" and pixel["flags"] == []
    assert pixel["plot"] == str(target / "plots" / "pixel_3_5.png")
    assert list(pixel["datasets"]) == ["co10", "co21"]
    for name, entry in pixel["datasets"].items():
        assert entry["n_samples"] == SAMPLES[name] and entry["fitted"] is True
        assert entry["x_unit"] == "km / s" and entry["data_unit"] == "K"
        assert list(entry["parameters"]) == ["amplitude_0", "mean_0", "stddev_0", "amplitude_1"]
        for own, value in entry["parameters"].items():
            assert value == pytest.approx(result.parameters[f"{name}.{own}"][PIXEL], rel=1e-9)
            assert pixel["parameters"][f"{name}.{own}"] == value
    assert f"wrote {target / 'plots' / 'pixel_3_5.png'}" in out.stderr


# --- fit_request with mappings of datasets -------------------------------------------------


def test_fit_request_of_a_joint_fit_returns_its_plan():
    b = Gaussian1D(1.0, 0.0, 1.0)
    b.mean.tied = "a.mean"
    request, plan = fit_request(
        {"a": Gaussian1D(1.0, 0.0, 1.0), "b": b},
        {"a": np.zeros((5, 2, 3)), "b": np.zeros((2, 3, 4))},
        world={"a": (np.arange(5.0),), "b": (np.arange(4.0),)},
        fitting_axes={"a": 0, "b": 2},
        initial={"a": "guess", "b": "model"},
    )
    assert isinstance(plan, JointPlan) and plan.datasets == ("a", "b")
    assert isinstance(request.model, JointModel)
    assert request.iterating_shape == (2, 3) and request.n_samples == 9
    assert [d.name for d in request.datasets] == ["a", "b"]
    assert request.datasets[1].fitting_axes == (2,)
    assert request.model.sample_slice("a") == slice(0, 5)
    assert request.model.guess_datasets == ("a",)
    # One cube: (request, UnitsPlan), as before.
    single, units = fit_request(Gaussian1D(), np.zeros((5, 2)), world=(np.arange(5.0),))
    assert isinstance(units, UnitsPlan) and single.datasets == ()
    # The refusals of parallel_fit, word for word.
    with pytest.raises(InputTypeError, match="initial: a mapping of datasets is for a joint fit"):
        fit_request(Gaussian1D(), np.zeros((5, 2)), initial={"a": "guess"})
    with pytest.raises(InputError, match=r"fitting_axes: no entry for dataset\(s\) 'b'"):
        fit_request(
            {"a": Gaussian1D(), "b": Gaussian1D()},
            {"a": np.zeros((5, 2)), "b": np.zeros((4, 2))},
            fitting_axes={"a": 0},
        )
