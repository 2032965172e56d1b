"""Small crops of real observed spectral cubes, for tests that fit real data.

The FITS files live in ``tests/data/``; ``tests/data/README.md`` says where each
comes from (PyPI package, version, path inside it), its licence and the crop.

``load_real_cube(name)`` returns a dict with

``data``
    float64 array, spectral axis first: ``(n_channels, ny, nx)``; blank pixels are NaN.
``x``
    1-D float64 spectral coordinate of the channels, in ``x_unit``.
``x_unit``, ``unit``
    unit strings of ``x`` and of ``data`` (both parse with ``astropy.units.Unit``).
``start``
    a sensible start for one ``Gaussian1D``: ``amplitude`` (data unit), ``mean``
    and ``stddev`` (x unit), taken from the median of per-spectrum fits.
``baseline``
    typical constant under the line (data unit), for a ``Gaussian1D + Const1D``
    fit; the MUSE and EIS crops sit on a continuum, the Mopra one does not.
``noise``
    typical rms of one channel in line-free channels (data unit).
``path``
    the FITS file.

With ``subtract_baseline=True`` each spectrum has the median of its channels
farther than 3 ``stddev`` from the start ``mean`` subtracted, so that one bare
``Gaussian1D`` fits the MUSE and EIS crops too (the files are left as observed).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"

_CUBES = {
    # Mopra HCN(1-0), G283.2-1.0 (Carina), from pyspeckit 1.0.4; radio velocity.
    "mopra_hcn": {
        "file": "mopra_hcn_crop.fits",
        "x_unit": "km/s",
        "start": {"amplitude": 0.2, "mean": -5.0, "stddev": 3.0},
        "baseline": 0.02,
        "noise": 0.21,
    },
    # VLT/MUSE, Abell 478 BCG, [NII] 6583 at z = 0.0858, from mpdaf 3.6; air wavelength.
    "muse_a478_nii": {
        "file": "muse_a478_nii_crop.fits",
        "x_unit": "Angstrom",
        "start": {"amplitude": 75.0, "mean": 7148.4, "stddev": 2.7},
        "baseline": 23.0,
        "noise": 7.5,
    },
    # Hinode/EIS raster, Fe XII 192.394 A, from eispac 0.99.4; counts.
    "eis_fe12": {
        "file": "eis_fe12_crop.fits",
        "x_unit": "Angstrom",
        "start": {"amplitude": 100.0, "mean": 192.406, "stddev": 0.03},
        "baseline": 6.4,
        "noise": 4.0,
    },
}

REAL_CUBES = list(_CUBES)


def _unit_string(bunit: str) -> str:
    """BUNIT as a string astropy parses without warnings (MUSE writes a non-FITS form)."""
    import astropy.units as u

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        return u.Unit(bunit).to_string()


def load_real_cube(name: str, subtract_baseline: bool = False) -> dict:
    """Read the real cube ``name`` (one of ``REAL_CUBES``); see the module docstring."""
    import astropy.units as u
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        info = _CUBES[name]
    except KeyError:
        raise KeyError(f"unknown real cube {name!r}; known: {REAL_CUBES}") from None
    path = DATA_DIR / info["file"]
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header
        data = np.asarray(hdul[0].data, dtype=np.float64)
        spectral = WCS(header).sub(["spectral"])
    if data.ndim != 3:
        raise ValueError(f"{path.name}: expected a 3-D cube, got shape {data.shape}")
    world = spectral.all_pix2world(np.arange(data.shape[0], dtype=np.float64), 0)[0]
    x = np.asarray(world * u.Unit(spectral.wcs.cunit[0]).to(info["x_unit"]), dtype=np.float64)
    start = dict(info["start"])
    if subtract_baseline:
        far = np.abs(x - start["mean"]) > 3 * start["stddev"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spectra stay NaN
            data = data - np.nanmedian(data[far], axis=0)
    return {
        "data": data,
        "x": x,
        "x_unit": info["x_unit"],
        "unit": _unit_string(header.get("BUNIT", "")),
        "start": start,
        "baseline": 0.0 if subtract_baseline else info["baseline"],
        "noise": info["noise"],
        "path": path,
    }


def real_case(name: str):
    """The real cube ``name`` as a :class:`parfit.corpus.CorpusCase` for the TRF comparison.

    Every spectrum starts from the cube's common start (as a user of astropy's
    ``parallel_fit_dask`` would): one ``Gaussian1D`` for the Mopra cube, a
    ``Gaussian1D + Const1D`` for the MUSE and EIS crops, which sit on a
    continuum.  Blank spectra stay in (all NaN).
    """
    from parfit.corpus import CorpusCase
    from parfit.fitters import Fitter
    from parfit.models import Const1D, Gaussian1D

    cube = load_real_cube(name)
    start = cube["start"]
    n_channels = cube["data"].shape[0]
    y = cube["data"].reshape(n_channels, -1).T.copy()
    model = Gaussian1D(start["amplitude"], start["mean"], start["stddev"])
    if name != "mopra_hcn":
        model = model + Const1D(cube["baseline"])
    _, values, lower, upper = zip(*Fitter().parameter_arrays(model))
    p0, lower, upper = (np.array(a, dtype=float) for a in (values, lower, upper))
    n = y.shape[0]
    return CorpusCase(
        kind=name,
        x=cube["x"],
        y=y,
        model=model,
        p0=np.tile(p0, (n, 1)),
        lower=np.tile(lower, (n, 1)),
        upper=np.tile(upper, (n, 1)),
        truth=np.full((n, len(p0)), np.nan),
    )
