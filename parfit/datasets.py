"""Synthetic cubes with known truth, for demos, tests and benchmarks.

Every generator takes a ``seed`` and uses :func:`numpy.random.default_rng`,
so the same call always gives the same cube.  Nothing is downloaded.
"""

import dataclasses

import numpy as np

__all__ = [
    "JointCubes",
    "SyntheticCube",
    "components_cube",
    "counts_cube",
    "gaussian_cube",
    "gaussian2d_cube",
    "joint_line_cubes",
    "multi_gaussian_cube",
    "velocity_field_cube",
]


@dataclasses.dataclass
class SyntheticCube:
    """A synthetic cube and the truth it was made from.

    Attributes
    ----------
    data : ndarray
        The cube, float64; the fitting axis (or axes) first.
    world : tuple of ndarray
        World coordinates of the fitting axes (1-D each).
    truth : dict of str to ndarray
        True value of each model parameter, maps of the non-fitting shape.
    noise : float
        Standard deviation of the Gaussian noise added.
    model : parfit model
        A model with reasonable shared starting values.
    unit : str
        Unit of the data values; ``world_unit`` that of the world axis.
    """

    data: np.ndarray
    world: tuple
    truth: dict
    noise: float
    model: object
    unit: str = "K"
    world_unit: str = "km/s"

    def to_fits(self, path, *, overwrite=False):
        """Write a spectral cube as FITS, with a WCS and ``BUNIT``.

        The spectral axis (the first numpy axis, FITS axis 3) is written as
        radio velocity (``VRAD``) from :attr:`world`; the two image axes
        get a small RA/Dec tangent-plane grid, so the cube looks like an
        observed one to :func:`parfit.io.open_cube` and to ``parfit run``.

        Parameters
        ----------
        path : str or path-like
            The file to write.
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        ValueError
            For cubes that are not ``(n_channels, ny, nx)`` with an evenly
            spaced spectral axis.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from parfit.io import open_cube
        >>> path = gaussian_cube((20, 3, 4)).to_fits(pathlib.Path(tempfile.mkdtemp()) / "c.fits")
        >>> cube = open_cube(path)
        >>> cube.data.shape, str(cube.unit), cube.wcs.wcs.ctype[2]
        ((20, 3, 4), 'K', 'VRAD')
        """
        from pathlib import Path

        from astropy import units as u
        from astropy.io import fits

        from .errors import InputError, OutputExistsError

        path = Path(path)
        v = np.asarray(self.world[0], dtype=np.float64) if len(self.world) == 1 else None
        if (
            self.data.ndim != 3
            or v is None
            or v.ndim != 1
            or len(v) < 2
            or not np.allclose(np.diff(v), v[1] - v[0])
        ):
            raise InputError(
                "to_fits writes (n_channels, ny, nx) cubes with an evenly spaced spectral axis only"
            )
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it"
            )
        to_ms = u.Unit(self.world_unit).to(u.m / u.s)
        header = fits.Header()
        for key, value in (
            ("CTYPE1", "RA---TAN"),
            ("CUNIT1", "deg"),
            ("CRPIX1", (self.data.shape[2] + 1) / 2),
            ("CRVAL1", 83.8),
            ("CDELT1", -1.0 / 3600),
            ("CTYPE2", "DEC--TAN"),
            ("CUNIT2", "deg"),
            ("CRPIX2", (self.data.shape[1] + 1) / 2),
            ("CRVAL2", -5.4),
            ("CDELT2", 1.0 / 3600),
            ("CTYPE3", "VRAD"),
            ("CUNIT3", "m/s"),
            ("CRPIX3", 1.0),
            ("CRVAL3", float(v[0] * to_ms)),
            ("CDELT3", float((v[1] - v[0]) * to_ms)),
            ("SPECSYS", "LSRK"),
            ("BUNIT", self.unit),
        ):
            header[key] = value
        fits.PrimaryHDU(self.data.astype(np.float32), header=header).writeto(
            path, overwrite=overwrite
        )
        return path


def gaussian_cube(shape=(60, 64, 64), *, noise=0.1, seed=0, n_blank=0):
    """A spectral cube holding one Gaussian emission line per pixel.

    The spectral axis runs from -50 to 50 km/s.  Each pixel's line has an
    amplitude between 1 and 3 K, a centre between -15 and 15 km/s and a
    width (sigma) between 3 and 8 km/s, all drawn at random.

    Parameters
    ----------
    shape : tuple of int
        ``(n_channels, ny, nx)``.
    noise : float
        Standard deviation of the added Gaussian noise, in K.
    seed : int
        Seed of the random generator.
    n_blank : int
        Number of pixels (in the last rows) whose spectra are all NaN, as in
        a blanked region of an observed cube.

    Returns
    -------
    SyntheticCube

    Examples
    --------
    >>> from parfit.datasets import gaussian_cube
    >>> cube = gaussian_cube((40, 8, 8), seed=1)
    >>> cube.data.shape, sorted(cube.truth)
    ((40, 8, 8), ['amplitude', 'mean', 'stddev'])
    """
    from .models import Gaussian1D

    rng = np.random.default_rng(seed)
    n_chan, *spatial = shape
    v = np.linspace(-50.0, 50.0, n_chan)
    truth = {
        "amplitude": rng.uniform(1.0, 3.0, spatial),
        "mean": rng.uniform(-15.0, 15.0, spatial),
        "stddev": rng.uniform(3.0, 8.0, spatial),
    }
    vv = v.reshape((n_chan,) + (1,) * len(spatial))
    data = truth["amplitude"] * np.exp(-0.5 * ((vv - truth["mean"]) / truth["stddev"]) ** 2)
    data = data + rng.normal(0.0, noise, data.shape)
    if n_blank:
        flat = data.reshape(n_chan, -1)
        flat[:, flat.shape[1] - n_blank :] = np.nan
    model = Gaussian1D(amplitude=2.0, mean=0.0, stddev=5.0)
    model.stddev.bounds = (0.0, None)
    return SyntheticCube(data=data, world=(v,), truth=truth, noise=noise, model=model)


def components_cube(shape=(100, 24, 36), *, noise=0.1, seed=0):
    """A spectral cube with regions of one, two and three well-separated lines.

    The left third of the map holds one Gaussian line per pixel, the middle
    third two, the right third three; ``truth["n_components"]`` says which.
    Lines have amplitudes of 1.2 to 2 K (S/N 12 to 20 with the default
    noise), widths (sigma) of 2.5 to 4 km/s, and sit near -30, 0 and +30
    km/s (each within 5 km/s), on a spectral axis from -60 to 60 km/s.
    Truth maps ``amplitude_k``, ``mean_k``, ``stddev_k`` number the lines by
    position, NaN where a pixel has fewer.

    Parameters
    ----------
    shape : tuple of int
        ``(n_channels, ny, nx)``.
    noise : float
        Standard deviation of the added Gaussian noise, in K.
    seed : int
        Seed of the random generator.

    Returns
    -------
    SyntheticCube
        Its ``model`` is a single Gaussian; the candidates of a selection
        are sums of one, two and three (see the "Starts and model
        selection" docs page).

    Examples
    --------
    >>> cube = components_cube((60, 6, 9), seed=1)
    >>> cube.truth["n_components"][0]
    array([1, 1, 1, 2, 2, 2, 3, 3, 3])
    """
    from .models import Gaussian1D

    rng = np.random.default_rng(seed)
    n_chan, ny, nx = shape
    v = np.linspace(-60.0, 60.0, n_chan)
    n_comp = np.broadcast_to(1 + (3 * np.arange(nx)) // max(nx, 1), (ny, nx)).copy()
    data = rng.normal(0.0, noise, shape)
    truth = {"n_components": n_comp}
    for k in range(3):
        truth[f"amplitude_{k}"] = np.full((ny, nx), np.nan)
        truth[f"mean_{k}"] = np.full((ny, nx), np.nan)
        truth[f"stddev_{k}"] = np.full((ny, nx), np.nan)
    centres = {1: [0.0], 2: [-15.0, 15.0], 3: [-30.0, 0.0, 30.0]}
    for n, where in ((n, n_comp == n) for n in (1, 2, 3)):
        count = int(where.sum())
        for k, centre in enumerate(centres[n]):
            amplitude = rng.uniform(1.2, 2.0, count)
            mean = centre + rng.uniform(-5.0, 5.0, count)
            stddev = rng.uniform(2.5, 4.0, count)
            truth[f"amplitude_{k}"][where] = amplitude
            truth[f"mean_{k}"][where] = mean
            truth[f"stddev_{k}"][where] = stddev
            line = amplitude * np.exp(-0.5 * ((v[:, None] - mean) / stddev) ** 2)
            data[:, where] += line
    model = Gaussian1D(amplitude=1.5, mean=0.0, stddev=3.0)
    return SyntheticCube(data=data, world=(v,), truth=truth, noise=noise, model=model)


def velocity_field_cube(shape=(90, 40, 40), *, noise=0.1, v_max=45.0, seed=0):
    """A rotating disk: one narrow line per pixel, its centre following a smooth velocity field.

    The line-of-sight velocity is ``v_max * tanh(r / r0) * cos(phi)`` (a
    rotation curve flattening at ``r0`` = a sixth of the map, seen
    inclined), so the centres sweep from ``-v_max`` to ``+v_max`` across
    the map while neighbours differ by a few km/s.  Amplitudes 1.5 to 2 K,
    widths (sigma) 2 to 3 km/s, spectral axis -60 to 60 km/s.  A start
    shared by every pixel (``model``: the line at 0 km/s) sits far from
    most lines: the case for ``initial="mean"`` and ``refit="neighbours"``.

    Parameters
    ----------
    shape : tuple of int
        ``(n_channels, ny, nx)``.
    noise : float
        Standard deviation of the added Gaussian noise, in K.
    v_max : float
        The flat rotation speed, in km/s.
    seed : int
        Seed of the random generator.

    Returns
    -------
    SyntheticCube

    Examples
    --------
    >>> cube = velocity_field_cube((60, 8, 8))
    >>> bool(cube.truth["mean"].min() < -20 < 20 < cube.truth["mean"].max())
    True
    """
    from .models import Gaussian1D

    rng = np.random.default_rng(seed)
    n_chan, ny, nx = shape
    v = np.linspace(-60.0, 60.0, n_chan)
    yy, xx = np.mgrid[0:ny, 0:nx]
    dx = xx - (nx - 1) / 2
    dy = (yy - (ny - 1) / 2) / 0.6  # inclined: the minor axis foreshortened
    r = np.hypot(dx, dy)
    r0 = max(nx, ny) / 6
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_phi = np.where(r > 0, dx / np.maximum(r, 1e-12), 0.0)
    truth = {
        "amplitude": rng.uniform(1.5, 2.0, (ny, nx)),
        "mean": v_max * np.tanh(r / r0) * cos_phi,
        "stddev": rng.uniform(2.0, 3.0, (ny, nx)),
    }
    line = truth["amplitude"] * np.exp(
        -0.5 * ((v[:, None, None] - truth["mean"]) / truth["stddev"]) ** 2
    )
    data = line + rng.normal(0.0, noise, shape)
    model = Gaussian1D(amplitude=1.5, mean=0.0, stddev=2.5)
    model.stddev.bounds = (0.5, 20.0)
    return SyntheticCube(data=data, world=(v,), truth=truth, noise=noise, model=model)


def gaussian2d_cube(shape=(4, 32, 32), *, noise=0.02, seed=0):
    """A stack of images, each holding one elliptical 2-D Gaussian.

    Fit it with ``fitting_axes=(1, 2)``; the world of the image axes is the
    pixel index (axis 1 is the model's ``x``, axis 2 its ``y``).

    Returns
    -------
    SyntheticCube
        ``truth`` maps have shape ``(n_images,)``.

    Examples
    --------
    >>> from parfit.datasets import gaussian2d_cube
    >>> gaussian2d_cube((3, 16, 16)).data.shape
    (3, 16, 16)
    """
    from .models import Gaussian2D

    rng = np.random.default_rng(seed)
    n, ny, nx = shape
    truth = {
        "amplitude": rng.uniform(1.0, 2.0, n),
        "x_mean": rng.uniform(0.4 * ny, 0.6 * ny, n),
        "y_mean": rng.uniform(0.4 * nx, 0.6 * nx, n),
        "x_stddev": rng.uniform(0.08 * ny, 0.12 * ny, n),
        "y_stddev": rng.uniform(0.05 * nx, 0.07 * nx, n),
        "theta": rng.uniform(0.2, 0.6, n),
    }
    x, y = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    model = Gaussian2D()
    data = np.empty(shape)
    for k in range(n):
        row = np.array([[truth[name][k] for name in model.param_names]])
        data[k] = model.evaluate(x.ravel(), y.ravel(), row).reshape(ny, nx)
    data += rng.normal(0.0, noise, shape)
    start = Gaussian2D(
        amplitude=1.5,
        x_mean=ny / 2,
        y_mean=nx / 2,
        x_stddev=0.1 * ny,
        y_stddev=0.06 * nx,
        theta=0.4,
    )
    return SyntheticCube(
        data=data,
        world=(np.arange(ny, dtype=float), np.arange(nx, dtype=float)),
        truth=truth,
        noise=noise,
        model=start,
        unit="Jy",
        world_unit="pix",
    )


def multi_gaussian_cube(shape=(256, 200, 200), *, n_components=3, baseline=True, noise=0.1, seed=0):
    """A spectral cube holding several Gaussian lines (and a baseline) per pixel.

    The lines sit near fixed, well-separated centres 50 km/s apart
    (``-50, 0, 50`` km/s for three), and the spectral axis runs from 50 km/s
    below the first centre to 50 km/s above the last (-100 to 100 km/s for
    three lines).  Each pixel's line ``k`` has an amplitude between 1 and
    3 K, a centre within 5 km/s of centre ``k`` and a width (sigma) between
    3 and 8 km/s; the optional linear baseline has a slope between -0.002
    and 0.002 K/(km/s) and an intercept between -0.2 and 0.2 K.  All are
    drawn at random, line by line, then the baseline, then the noise.

    Parameters
    ----------
    shape : tuple of int
        ``(n_channels, ny, nx)`` (any number of spatial axes).
    n_components : int
        Number of Gaussian lines per pixel, at least 1.
    baseline : bool
        Add a straight-line baseline (a ``Linear1D`` component).
    noise : float
        Standard deviation of the added Gaussian noise, in K.
    seed : int
        Seed of the random generator.

    Returns
    -------
    SyntheticCube
        ``model`` is ``Gaussian1D + ... + Gaussian1D (+ Linear1D)`` starting
        every line at amplitude 2 K, its centre and sigma 5 km/s (sigma
        bounded below by 0), and the baseline at 0; ``truth`` has one map per
        parameter of that model, named as its ``param_names``
        (``amplitude_0, mean_0, stddev_0, ..., slope_3, intercept_3``).  With
        ``n_components=1`` and no baseline the model is a plain
        ``Gaussian1D``.  ``data`` is the model evaluated at the truth plus
        the noise.

    Raises
    ------
    ValueError
        If ``n_components`` is not an integer >= 1.

    Examples
    --------
    >>> from parfit.datasets import multi_gaussian_cube
    >>> cube = multi_gaussian_cube((128, 4, 5), seed=1)
    >>> cube.data.shape, cube.truth["mean_1"].shape
    ((128, 4, 5), (4, 5))
    >>> cube.model.param_names[:3], cube.model.param_names[-2:]
    (('amplitude_0', 'mean_0', 'stddev_0'), ('slope_3', 'intercept_3'))
    >>> list(cube.truth) == list(cube.model.param_names)
    True
    >>> float(cube.world[0][0]), float(cube.world[0][-1])
    (-100.0, 100.0)
    >>> [float(cube.model.mean_0.value), float(cube.model.mean_2.value)]
    [-50.0, 50.0]
    """
    from .errors import InputError
    from .models import Gaussian1D, Linear1D

    if (
        isinstance(n_components, bool)
        or not isinstance(n_components, (int, np.integer))
        or n_components < 1
    ):
        raise InputError(f"n_components must be an integer >= 1; got {n_components!r}")
    if len(shape) < 1:
        raise InputError(f"shape must be (n_channels, *spatial); got {shape!r}")
    rng = np.random.default_rng(seed)
    n_chan, *spatial = shape
    centres = 50.0 * (np.arange(n_components) - (n_components - 1) / 2)
    v = np.linspace(centres[0] - 50.0, centres[-1] + 50.0, n_chan)

    components = []
    for centre in centres:
        g = Gaussian1D(amplitude=2.0, mean=float(centre), stddev=5.0)
        g.stddev.bounds = (0.0, None)
        components.append(g)
    if baseline:
        components.append(Linear1D(slope=0.0, intercept=0.0))
    model = components[0]
    for component in components[1:]:
        model = model + component

    values = []
    for centre in centres:
        values += [
            rng.uniform(1.0, 3.0, spatial),
            rng.uniform(centre - 5.0, centre + 5.0, spatial),
            rng.uniform(3.0, 8.0, spatial),
        ]
    if baseline:
        values += [rng.uniform(-0.002, 0.002, spatial), rng.uniform(-0.2, 0.2, spatial)]
    truth = dict(zip(model.param_names, values))

    params = np.stack([np.reshape(t, -1) for t in values], axis=1)
    flat = model.evaluate(v, params) if params.shape[0] else np.empty((0, n_chan))
    data = np.moveaxis(flat, -1, 0).reshape(shape)
    data = data + rng.normal(0.0, noise, data.shape)
    return SyntheticCube(data=data, world=(v,), truth=truth, noise=noise, model=model)


def counts_cube(shape=(60, 40, 40), *, peak=(2.0, 8.0), background=(0.3, 1.0), seed=0):
    """A counts cube: a faint emission line on a background, a few counts per channel.

    Poisson counts on an energy axis from 5.5 to 7.5 keV, like an X-ray
    line map.  Inside a disk covering about a third of the image a line
    near 6.4 keV (width 0.08-0.16 keV, centre within 0.05 keV of 6.4) peaks
    at ``peak`` counts per channel (drawn uniformly); outside it there is no
    line (amplitude 0: nothing to detect, only upper limits).  Every pixel
    has a flat background of ``background`` counts per channel, varying
    smoothly across the image.

    Parameters
    ----------
    shape : tuple of int
        ``(n_channels, ny, nx)``.
    peak : tuple of float
        Range of the line's peak, counts per channel, inside the disk.
    background : tuple of float
        Range of the background, counts per channel.
    seed : int
        Seed of the random generator.

    Returns
    -------
    SyntheticCube
        ``truth`` holds ``amplitude_0``, ``mean_0``, ``stddev_0`` (the line)
        and ``amplitude_1`` (the background); ``model`` is a
        ``Gaussian1D + Const1D`` starting at the typical line; ``noise`` is
        NaN (the noise is Poisson), ``unit`` ``"ct"`` and ``world_unit``
        ``"keV"``.

    Examples
    --------
    >>> from parfit.datasets import counts_cube
    >>> cube = counts_cube((50, 10, 12), seed=1)
    >>> cube.data.shape, bool((cube.data >= 0).all()), cube.unit
    ((50, 10, 12), True, 'ct')
    >>> bool((cube.truth["amplitude_0"] == 0).any() and (cube.truth["amplitude_0"] > 0).any())
    True
    """
    from .models import Const1D, Gaussian1D

    rng = np.random.default_rng(seed)
    n_chan, ny, nx = shape
    energy = np.linspace(5.5, 7.5, n_chan)
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot((yy - 0.4 * ny) / max(ny, 1), (xx - 0.55 * nx) / max(nx, 1))
    inside = radius < 0.33
    truth = {
        "amplitude_0": np.where(inside, rng.uniform(*peak, (ny, nx)), 0.0),
        "mean_0": 6.4 + rng.uniform(-0.05, 0.05, (ny, nx)),
        "stddev_0": rng.uniform(0.08, 0.16, (ny, nx)),
        "amplitude_1": background[0]
        + (background[1] - background[0])
        * (0.5 + 0.5 * np.sin(xx / max(nx, 1) * np.pi * 1.5))
        * (0.5 + 0.5 * np.cos(yy / max(ny, 1) * np.pi)),
    }
    model = Gaussian1D(amplitude=4.0, mean=6.4, stddev=0.12) + Const1D(amplitude=0.6)
    model.stddev_0.bounds = (0.01, None)
    params = np.stack([truth[n].reshape(-1) for n in model.param_names], axis=1)
    expected = model.evaluate(energy, params)
    data = rng.poisson(np.moveaxis(expected, -1, 0).reshape(shape)).astype(np.float64)
    return SyntheticCube(
        data=data,
        world=(energy,),
        truth=truth,
        noise=float("nan"),
        model=model,
        unit="ct",
        world_unit="keV",
    )


@dataclasses.dataclass
class JointCubes:
    """Several cubes of the same pixels with known truth, for joint fits.

    Attributes
    ----------
    data : dict of str to ndarray
        Each dataset's cube (float64), in its own axis order.
    world : dict of str to tuple of ndarray
        Each dataset's spectral axis.
    fitting_axes : dict of str to int
        Each dataset's spectral axis position.
    noise : dict of str to float
        Standard deviation of each dataset's noise (``weights = 1 / noise``).
    truth : dict of str to ndarray
        True value of every free parameter of :attr:`models`, keyed as the
        joint fit's maps (``"<dataset>.<parameter>"``).
    models : dict of str to parfit model
        Each dataset's model, with the shared parameters tied.
    """

    data: dict
    world: dict
    fitting_axes: dict
    noise: dict
    truth: dict
    models: dict

    def fit_arguments(self):
        """``parallel_fit`` keywords besides the models and the data (world, axes, weights)."""
        return dict(
            world=self.world,
            fitting_axes=self.fitting_axes,
            weights={name: 1.0 / sigma for name, sigma in self.noise.items()},
        )


def joint_line_cubes(shape=(16, 20), *, channels=(60, 45), noise=(0.1, 0.12), seed=0, blank=None):
    """Two line cubes of the same pixels sharing each line's velocity and width.

    Like the two rotational lines of a molecule observed with two
    instruments: ``co10`` has ``channels[0]`` channels on [-8, 8] km/s and
    its spectral axis first; ``co21`` has ``channels[1]`` channels on
    [-7, 9] km/s (another grid), its spectral axis last, and a constant
    baseline.  The maps look like a rotating disk: the centre velocity
    runs from -1.8 to 1.8 km/s along the disk's major axis, the width
    (sigma, 0.8 to 1.5 km/s) grows towards the centre, where both lines
    are brightest (up to 3 K, fading to 0.5 K), and ``co21``'s baseline
    slopes from -0.2 to 0.2 K across the map.  Centre and width are the
    same in both cubes; the amplitudes and the baseline are their own.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``, the pixels.
    channels : tuple of int
        Channels of ``co10`` and ``co21``.
    noise : tuple of float
        Noise of ``co10`` and ``co21``, in K.
    seed : int
        Seed of the random generator.
    blank : tuple of slice, optional
        A region of the map where ``co21`` is all NaN (not observed).

    Returns
    -------
    JointCubes

    Examples
    --------
    >>> from parfit.datasets import joint_line_cubes
    >>> cubes = joint_line_cubes((4, 5), seed=1)
    >>> {name: cube.shape for name, cube in cubes.data.items()}
    {'co10': (60, 4, 5), 'co21': (4, 5, 45)}
    >>> cubes.models["co21"].mean_0.tied
    'co10.mean'
    """
    from .models import Const1D, Gaussian1D

    rng = np.random.default_rng(seed)
    ny, nx = shape
    # A rotating disk seen at an angle: a velocity gradient along its major
    # axis (turning over at the edges), lines wider towards the centre, both
    # lines brightest at the centre and fading outwards, a baseline sloping
    # across the map; a random position angle and a little scatter per pixel.
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    angle = rng.uniform(0.0, np.pi)
    major = xx * np.cos(angle) + yy * np.sin(angle)
    radius = np.hypot(xx, yy)
    mean = 1.8 * np.tanh(2.5 * major) + rng.normal(0.0, 0.05, shape)
    stddev = 1.5 - 0.7 * np.clip(radius / np.sqrt(2), 0.0, 1.0)
    amp10 = 0.5 + 2.5 * np.exp(-(radius**2) / 0.6) * rng.uniform(0.9, 1.1, shape)
    amp21 = 0.5 + 2.5 * np.exp(-(radius**2) / 0.6) * rng.uniform(0.9, 1.1, shape)
    base21 = 0.2 * yy
    v10 = np.linspace(-8.0, 8.0, channels[0])
    v21 = np.linspace(-7.0, 9.0, channels[1])
    co10 = amp10 * np.exp(-0.5 * ((v10[:, None, None] - mean) / stddev) ** 2)
    co10 = co10 + rng.normal(0.0, noise[0], co10.shape)
    co21 = amp21[..., None] * np.exp(-0.5 * ((v21 - mean[..., None]) / stddev[..., None]) ** 2)
    co21 = co21 + base21[..., None] + rng.normal(0.0, noise[1], co21.shape)
    if blank is not None:
        co21[tuple(blank)] = np.nan
    m10 = Gaussian1D(amplitude=1.0, mean=0.0, stddev=1.0, bounds={"stddev": (0.0, None)})
    m21 = Gaussian1D(amplitude=1.0, mean=0.0, stddev=1.0) + Const1D(0.0)
    m21.mean_0.tied = "co10.mean"
    m21.stddev_0.tied = "co10.stddev"
    return JointCubes(
        data={"co10": co10, "co21": co21},
        world={"co10": (v10,), "co21": (v21,)},
        fitting_axes={"co10": 0, "co21": 2},
        noise={"co10": noise[0], "co21": noise[1]},
        truth={
            "co10.amplitude": amp10,
            "co10.mean": mean,
            "co10.stddev": stddev,
            "co21.amplitude_0": amp21,
            "co21.amplitude_1": base21,
        },
        models={"co10": m10, "co21": m21},
    )
