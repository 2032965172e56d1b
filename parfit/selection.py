"""Per-pixel model selection: several candidate models, the best by an information criterion.

``parallel_fit(model=[m1, m2, m3], data, select="aicc")`` fits every
candidate to every pixel and picks, pixel by pixel, the candidate with the
lowest criterion (scousepy, BTS and MUFASA choose the number of velocity
components this way).  The criteria, with ``k`` free parameters and ``n``
valid samples in the pixel, and ``D`` the pixel's ``-2 ln L`` up to a
constant shared by the candidates:

* ``aic = D + 2k``;
* ``aicc = aic + 2k(k+1)/(n-k-1)`` (needs ``n > k + 1``);
* ``bic = D + k ln n``;

where ``D`` is the chi-square when the data have ``weights`` (``1/sigma``,
so the noise is known), ``n ln(chi2/n)`` when they do not (the noise
estimated from the residuals, as lmfit does), and the Cash statistic for
counts (``statistic="cash"`` or ``"cstat"``).

A candidate takes part at a pixel where its fit succeeded and each of its
peaks is significant: ``|amplitude| >= 3 * error`` (:data:`PEAK_SIGNIFICANCE`).
Without this rule an extra line fitted to a noise spike wins about half the
pixels of a one-line cube by AICc: a component free to sit anywhere gains
more than the criterion's penalty from the noise alone (the look-elsewhere
effect), while the spike it fits is never significant.

Candidates are considered from the fewest free parameters up: a more
complex one replaces the current choice only where its criterion is lower
by more than ``select_threshold`` (0: the lowest criterion wins, ties going
to the simpler model).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parfit.errors import InputError, InputTypeError, OutputExistsError
from parfit.result import FitResult, read_result

# The names of a selection folder's stores are the store layer's (the diagnostics read them).
from parfit.store.layout import SELECTION_STORE, candidate_store, is_selection_folder

__all__ = [
    "SELECT_CRITERIA",
    "SelectionResult",
    "check_select",
    "choose",
    "criterion_map",
    "is_candidates",
    "is_selection_folder",
    "read_selection",
]

#: Accepted values of ``select=``.
SELECT_CRITERIA = ("aic", "aicc", "bic")

#: A peak whose amplitude is below this many times its error disqualifies its
#: candidate at that pixel.
PEAK_SIGNIFICANCE = 3.0


def is_candidates(model: Any) -> bool:
    """True for a list or tuple of models: the candidates of a selection."""
    return isinstance(model, (list, tuple))


def check_select(select: Any, threshold: Any, n_candidates: int) -> tuple[str, float]:
    """``select`` and ``select_threshold`` checked for ``n_candidates`` models.

    Examples
    --------
    >>> check_select("aicc", 0, 3)
    ('aicc', 0.0)
    >>> check_select("chi2", 0, 3)
    Traceback (most recent call last):
    ...
    parfit.errors.InputError: select must be one of 'aic', 'aicc', 'bic'; got 'chi2'
    """
    if select is None:
        raise InputError(
            f"model is a list of {n_candidates} candidate models, which needs select= (one "
            f"of {', '.join(map(repr, SELECT_CRITERIA))}) to choose between them per pixel"
        )
    if not isinstance(select, str) or select not in SELECT_CRITERIA:
        raise InputError(
            f"select must be one of {', '.join(map(repr, SELECT_CRITERIA))}; got {select!r}"
        )
    if n_candidates < 2:
        raise InputError(
            f"select={select!r} needs at least two candidate models; got {n_candidates}"
        )
    if (
        isinstance(threshold, (bool, np.bool_))
        or not isinstance(threshold, numbers.Real)
        or not math.isfinite(threshold)
        or threshold < 0
    ):
        raise InputError(
            f"select_threshold must be a number >= 0 (the improvement of the criterion a more "
            f"complex model needs); got {threshold!r}"
        )
    return select, float(threshold)


def criterion_map(
    statistic: np.ndarray,
    n_valid: np.ndarray,
    k: int,
    criterion: str,
    *,
    statistic_name: str = "chi2",
    known_noise: bool = False,
) -> np.ndarray:
    """The information criterion of every pixel (see the module's docs); NaN where undefined.

    Examples
    --------
    >>> import numpy as np
    >>> criterion_map(np.array([50.0]), np.array([60]), 3, "aic", known_noise=True)
    array([56.])
    >>> float(criterion_map(np.array([50.0]), np.array([60]), 3, "bic", known_noise=True)[0])
    62.28...
    """
    stat = np.asarray(statistic, dtype=np.float64)
    n = np.asarray(n_valid, dtype=np.float64)
    with np.errstate(all="ignore"):
        if statistic_name != "chi2" or known_noise:
            deviance = stat
        else:
            # Noise unknown: the likelihood maximised over it.  A perfect fit
            # (chi2 = 0) has no finite criterion; floor it far below any noise.
            deviance = n * np.log(np.maximum(stat, 1e-300) / n)
        if criterion == "aic":
            out = deviance + 2 * k
        elif criterion == "aicc":
            out = np.where(n - k - 1 > 0, deviance + 2 * k + 2 * k * (k + 1) / (n - k - 1), np.nan)
        elif criterion == "bic":
            out = deviance + k * np.log(n)
        else:  # pragma: no cover - checked before
            raise ValueError(criterion)
    return np.where(np.isfinite(out), out, np.nan)


def choose(
    criteria: np.ndarray, n_free: Sequence[int], threshold: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the candidate chosen and its margin to the runner-up.

    ``criteria`` is ``(n_candidates, *shape)`` with NaN where a candidate
    did not succeed.  Candidates are taken by increasing ``n_free`` (ties in
    the given order); one replaces the choice so far where its criterion is
    lower by more than ``threshold``.  Returns ``selected`` (int16, -1 where
    none succeeded) and ``delta``: the lowest criterion among the other
    successful candidates minus the chosen one's (NaN with fewer than two;
    negative where ``threshold`` kept a simpler model with a higher one).

    Examples
    --------
    >>> import numpy as np
    >>> crit = np.array([[10.0, 10.0, np.nan], [7.0, 9.5, np.nan]])
    >>> choose(crit, [3, 6])
    (array([ 1,  1, -1], dtype=int16), array([3. , 0.5, nan]))
    >>> choose(crit, [3, 6], threshold=5.0)[0]
    array([ 0,  0, -1], dtype=int16)
    """
    criteria = np.asarray(criteria, dtype=np.float64)
    shape = criteria.shape[1:]
    selected = np.full(shape, -1, dtype=np.int16)
    best = np.full(shape, np.nan)
    for c in sorted(range(len(criteria)), key=lambda c: (n_free[c], c)):
        value = criteria[c]
        ok = np.isfinite(value)
        with np.errstate(invalid="ignore"):
            take = ok & ((selected < 0) | (value < best - threshold))
        selected[take] = c
        best[take] = value[take]
    others = np.where(
        np.arange(len(criteria)).reshape((-1,) + (1,) * len(shape)) == selected, np.nan, criteria
    )
    # All-NaN columns (fewer than two candidates) warn; their NaN is the answer.
    with (
        np.errstate(invalid="ignore"),
        warnings.catch_warnings(action="ignore", category=RuntimeWarning),
    ):
        runner_up = np.nanmin(others, axis=0) if len(criteria) else best
    delta = np.where(selected >= 0, runner_up - best, np.nan)
    return selected, delta


class SelectionResult:
    """The result of a per-pixel model selection (``parallel_fit(model=[...], select=...)``).

    Attributes
    ----------
    candidates : list of FitResult
        One complete result per candidate model, in the order given.
    criterion : str
        ``"aic"``, ``"aicc"`` or ``"bic"``.
    threshold : float
        ``select_threshold``.
    selected : ndarray of int16
        The chosen candidate's index per pixel; -1 where no candidate succeeded.
    criteria : ndarray
        ``(n_candidates, *shape)``: every candidate's criterion (NaN where it
        did not succeed).
    delta : ndarray
        The runner-up's criterion minus the chosen one's (NaN where fewer
        than two candidates succeeded).
    n_free : tuple of int
        Free parameters of each candidate.
    n_valid : ndarray
        Valid samples per pixel.
    parameters, errors : dict of str to ndarray
        Every parameter name of any candidate: the chosen candidate's value
        and error where it has the parameter, NaN elsewhere.
    statistic, status, flags : ndarray
        Those of the chosen candidate; where none succeeded, those of the
        first candidate.
    shape, dims, coords, wcs
        Of the maps (as the candidates').

    Examples
    --------
    >>> import numpy as np
    >>> import parfit
    >>> from parfit.models import Gaussian1D
    >>> x = np.linspace(-10, 10, 80)
    >>> rng = np.random.default_rng(0)
    >>> two = np.r_[1.0, 0.0][None, :] * np.exp(-0.5 * (x[:, None] - 4) ** 2)
    >>> cube = (np.exp(-0.5 * (x[:, None] + 3) ** 2) + two)[:, :, None] * np.ones((1, 1, 3))
    >>> cube = cube + rng.normal(0, 0.05, cube.shape)
    >>> result = parfit.parallel_fit(
    ...     [Gaussian1D(), Gaussian1D() + Gaussian1D()], cube, world=(x,),
    ...     initial="guess", select="aicc", scheduler="synchronous")
    >>> result.selected
    array([[1, 1, 1],
           [0, 0, 0]], dtype=int16)
    """

    def __init__(
        self,
        candidates: Sequence[FitResult],
        *,
        criterion: str,
        threshold: float,
        n_free: Sequence[int],
        n_valid: np.ndarray,
        criteria: np.ndarray | None = None,
        selected: np.ndarray | None = None,
        delta: np.ndarray | None = None,
        statistic_name: str = "chi2",
        known_noise: bool = False,
        peaks: Sequence[Sequence[str]] | None = None,
        components: Sequence[Mapping[str, Sequence[str]]] | None = None,
    ) -> None:
        self.candidates = list(candidates)
        self.criterion = criterion
        self.threshold = float(threshold)
        self.n_free = tuple(int(k) for k in n_free)
        self.n_valid = np.asarray(n_valid)
        self.statistic_name = statistic_name
        self.known_noise = bool(known_noise)
        if criteria is None:
            peaks = peaks if peaks is not None else [()] * len(self.candidates)
            criteria = np.stack(
                [
                    np.where(
                        _eligible(c, own),
                        criterion_map(
                            np.asarray(c.statistic),
                            self.n_valid,
                            k,
                            criterion,
                            statistic_name=statistic_name,
                            known_noise=known_noise,
                        ),
                        np.nan,
                    )
                    for c, k, own in zip(self.candidates, self.n_free, peaks, strict=True)
                ]
            )
        self.criteria = np.asarray(criteria, dtype=np.float64)
        if selected is None or delta is None:
            selected, delta = choose(self.criteria, self.n_free, self.threshold)
        self.selected = np.asarray(selected, dtype=np.int16)
        self.delta = np.asarray(delta, dtype=np.float64)
        first = self.candidates[0]
        self.shape = first.shape
        self.dims = first.dims
        self.coords = first.coords
        self.wcs = first.wcs
        names: dict[str, None] = {}
        for c in self.candidates:
            names.update(dict.fromkeys(c.param_names))
        self.param_names = tuple(names)
        self.parameters = {n: self._pick(lambda c, n=n: c.parameters.get(n)) for n in names}
        self.errors = {n: self._pick(lambda c, n=n: c.errors.get(n)) for n in names}
        #: Per candidate, ``{parameter of a peak: [its name in each peak, in order]}``.
        self.component_names = [
            {k: list(v) for k, v in names.items()}
            for names in (components or [{} for _ in self.candidates])
        ]
        self.statistic = self._pick(lambda c: c.statistic, fallback=True)
        self.status = self._pick(lambda c: c.status, fallback=True, dtype=np.int8)
        self.flags = self._pick(lambda c: c.flags, fallback=True, dtype=np.uint8)

    def _pick(self, get: Any, fallback: bool = False, dtype: Any = np.float64) -> np.ndarray:
        fill = np.nan if np.dtype(dtype).kind == "f" else 0
        out = np.full(self.shape, fill, dtype=dtype)
        if fallback:
            out[...] = np.asarray(get(self.candidates[0]), dtype=dtype)
        for k, c in enumerate(self.candidates):
            values = get(c)
            if values is None:
                continue
            here = self.selected == k
            out[here] = np.asarray(values, dtype=dtype)[here]
        return out

    @property
    def success(self) -> np.ndarray:
        """True where some candidate succeeded (and was chosen)."""
        return self.selected >= 0

    @property
    def n_components(self) -> np.ndarray:
        """The number of peaks of the chosen candidate per pixel (0 where none was chosen).

        Peaks are the components that have a position and an amplitude
        (``Gaussian1D``, ``Lorentz1D``...); a baseline is not one.
        """
        counts = [
            max((len(v) for v in names.values()), default=0) for names in self.component_names
        ]
        out = np.zeros(self.shape, dtype=np.int16)
        for k, n in enumerate(counts):
            out[self.selected == k] = n
        return out

    def components(self, name: str, *, errors: bool = False) -> np.ndarray:
        """One parameter of every peak of the chosen candidate, aligned across candidates.

        Candidates name their parameters their own way (a single
        ``Gaussian1D`` has ``mean``, a sum of two ``mean_0`` and
        ``mean_1``); this gathers peak ``j``'s ``name`` whatever the chosen
        candidate, as ``(n_max, *shape)``: ``out[j]`` is the ``j``-th peak
        (by position, components being ordered) where the chosen candidate
        has at least ``j + 1`` peaks, NaN elsewhere.  ``errors=True`` gives
        their errors.

        Examples
        --------
        >>> import numpy as np
        >>> import parfit
        >>> from parfit.datasets import components_cube
        >>> from parfit.models import Gaussian1D
        >>> cube = components_cube((80, 1, 6), seed=1)  # one, two, then three lines
        >>> g = Gaussian1D(1.5, 0.0, 3.0)
        >>> result = parfit.parallel_fit([g, g + g, g + g + g], cube.data, world=cube.world,
        ...                              initial="guess", select="aicc")
        >>> result.n_components
        array([[1, 1, 2, 2, 3, 3]], dtype=int16)
        >>> np.round(result.components("mean")[:, 0], -1) + 0.0  # each pixel's lines
        array([[  0.,   0., -10., -10., -30., -30.],
               [ nan,  nan,  10.,  10.,   0.,   0.],
               [ nan,  nan,  nan,  nan,  30.,  30.]])
        """
        n_max = max(len(names.get(name, ())) for names in self.component_names)
        if n_max == 0:
            known = sorted({n for names in self.component_names for n in names})
            raise KeyError(
                f"no candidate has a peak with a parameter {name!r}; the peaks' parameters "
                f"are {', '.join(map(repr, known)) or 'none'}"
            )
        out = np.full((n_max,) + tuple(self.shape), np.nan)
        for k, names in enumerate(self.component_names):
            here = self.selected == k
            source = self.candidates[k].errors if errors else self.candidates[k].parameters
            for j, full in enumerate(names.get(name, ())):
                values = source.get(full)
                if values is not None:
                    out[j][here] = np.asarray(values, dtype=np.float64)[here]
        return out

    @property
    def n_fits(self) -> int:
        return int(math.prod(self.shape))

    def counts(self) -> dict[int, int]:
        """Pixels per chosen candidate, ``{index: count}``; -1 counts pixels without any."""
        codes, n = np.unique(self.selected, return_counts=True)
        return {int(c): int(k) for c, k in zip(codes, n)}

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{k}: {n}" for k, n in sorted(self.counts().items(), key=lambda kv: kv[0])
        )
        return (
            f"<SelectionResult {self.n_fits} pixels of shape {self.shape}, "
            f"{len(self.candidates)} candidates by {self.criterion}, chosen {{{parts}}}>"
        )

    def summary(self) -> str:
        """A text report: the pixels each candidate won, the margins, then each candidate."""
        lines = [
            f"model selection by {self.criterion.upper()} over {len(self.candidates)} "
            f"candidates, {self.n_fits} pixels"
            + (f" (threshold {self.threshold:g})" if self.threshold else ""),
        ]
        counts = self.counts()
        for k, c in enumerate(self.candidates):
            n = counts.get(k, 0)
            here = self.selected == k
            margin = self.delta[here & np.isfinite(self.delta)]
            med = f", median margin {np.median(margin):.3g}" if margin.size else ""
            lines.append(
                f"  candidate {k}: {_describe(c)} ({self.n_free[k]} free): chosen for {n} "
                f"pixels ({100.0 * n / max(self.n_fits, 1):.1f}%){med}"
            )
        if counts.get(-1):
            lines.append(f"  no candidate succeeded: {counts[-1]} pixels")
        for k, c in enumerate(self.candidates):
            lines.append("")
            lines.append(f"--- candidate {k} ---")
            lines.append(c.summary())
        return "\n".join(lines)

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset``: ``selected``, ``delta``, ``criteria`` (over ``candidate``),
        the chosen parameters and errors, ``statistic``, ``status`` and ``flags``."""
        import xarray as xr

        dims = self.dims
        coords = {d: v for d, v in self.coords.items() if d in dims}
        data: dict[str, Any] = {
            "selected": (dims, self.selected, {"long_name": "chosen candidate (-1: none)"}),
            "delta": (
                dims,
                self.delta,
                {"long_name": f"{self.criterion} of the runner-up minus the chosen one's"},
            ),
            "criteria": (
                ("candidate",) + tuple(dims),
                self.criteria,
                {"long_name": f"{self.criterion} of every candidate"},
            ),
            "n_valid": (dims, self.n_valid, {"long_name": "valid samples"}),
        }
        for name in self.param_names:
            data[name] = (dims, self.parameters[name], {"long_name": f"fitted {name}"})
            data[f"{name}_error"] = (dims, self.errors[name])
        data["statistic"] = (dims, self.statistic)
        data["status"] = (dims, self.status)
        data["flags"] = (dims, self.flags)
        return xr.Dataset(
            data,
            coords={**coords, "candidate": np.arange(len(self.candidates))},
            attrs={
                "criterion": self.criterion,
                "threshold": self.threshold,
                "n_free": list(self.n_free),
                "candidates": json.dumps([_describe(c) for c in self.candidates]),
                "statistic_name": self.statistic_name,
                "components": json.dumps(self.component_names),
            },
        )

    def to_zarr(self, path: Any, *, overwrite: bool = False) -> None:
        """Write the selection's maps (:meth:`to_xarray`) to a zarr store at ``path``."""
        if os.path.exists(path) and not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it"
            )
        self.to_xarray().to_zarr(path, mode="w", consolidated=False)


def _eligible(result: FitResult, peaks: Sequence[str]) -> np.ndarray:
    """Where ``result`` succeeded with every peak amplitude in ``peaks`` significant."""
    ok = np.array(result.success, dtype=bool)
    with np.errstate(invalid="ignore"):
        for name in peaks:
            amplitude = np.abs(np.asarray(result.parameters[name]))
            ok &= amplitude >= PEAK_SIGNIFICANCE * np.asarray(result.errors[name])
    return ok


def peak_components(model: Any) -> dict[str, list[str]]:
    """``{parameter of a peak: [its full name in each peak of model, in order]}``.

    Examples
    --------
    >>> from parfit.models import Const1D, Gaussian1D
    >>> peak_components(Gaussian1D() + Const1D() + Gaussian1D())["mean"]
    ['mean_0', 'mean_2']
    >>> peak_components(Gaussian1D())["stddev"]
    ['stddev']
    """
    from parfit.models import CompoundModel

    def pure_sum(m: Any) -> bool:
        if not isinstance(m, CompoundModel):
            return True
        return bool(m.operator == "+" and pure_sum(m.left) and pure_sum(m.right))

    out: dict[str, list[str]] = {}
    if isinstance(model, CompoundModel):
        if not pure_sum(model):
            return out
        for t, leaf in enumerate(model.leaves):
            if getattr(leaf, "peak_parameters", None) is not None:
                for local in leaf.param_names:
                    out.setdefault(local, []).append(f"{local}_{t}")
    elif getattr(model, "peak_parameters", None) is not None:
        out = {local: [local] for local in model.param_names}
    return out


def peak_amplitudes(model: Any, names: Sequence[str]) -> list[str]:
    """The free parameters among ``names`` that are amplitudes of ``model``'s peaks."""
    full = list(getattr(model, "param_names", ()))
    indices: list[int] = list(getattr(model, "peak_amplitude_indices", lambda: [])())
    return [full[i] for i in indices if full[i] in names]


def _describe(result: FitResult) -> str:
    """A candidate in a few words: its model's expression (``Gaussian1D + Const1D``)."""
    start = getattr(result, "_start_model", None)
    if start is None:
        return ", ".join(result.param_names)
    try:
        text = repr(start)
    except Exception:  # pragma: no cover - a model whose repr fails
        return type(start).__name__
    head = "<CompoundModel("
    if text.startswith(head) and ":" in text:  # parfit's compound models
        return text[len(head) : text.index(":")]
    return type(start).__name__


def read_selection(path: Any) -> SelectionResult:
    """Read the output folder of a selection run (``output=`` with ``select=``).

    The folder holds ``candidate_<k>.zarr`` (each read with
    :func:`parfit.read_result`) and ``selection.zarr``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> import parfit
    >>> from parfit.datasets import components_cube
    >>> from parfit.models import Gaussian1D
    >>> cube = components_cube((80, 1, 6), seed=1)
    >>> g = Gaussian1D(1.5, 0.0, 3.0)
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "chosen"
    >>> written = parfit.parallel_fit([g, g + g], cube.data, world=cube.world,
    ...                               initial="guess", select="bic", output=folder)
    >>> sorted(p.name for p in folder.iterdir())
    ['candidate_0.zarr', 'candidate_1.zarr', 'selection.zarr']
    >>> back = read_selection(folder)
    >>> bool(np.array_equal(back.selected, written.selected)), back.criterion
    (True, 'bic')
    """
    import xarray as xr

    path = os.fspath(path)
    store = os.path.join(path, SELECTION_STORE)
    if not os.path.isdir(store):
        raise InputError(
            f"{path!r} is not the output folder of a model selection: it has no {SELECTION_STORE}"
        )
    ds = xr.open_zarr(store, consolidated=False)
    n = len(json.loads(ds.attrs["candidates"]))
    candidates = [read_result(os.path.join(path, candidate_store(k))) for k in range(n)]
    return SelectionResult(
        candidates,
        criterion=ds.attrs["criterion"],
        threshold=float(ds.attrs["threshold"]),
        n_free=ds.attrs["n_free"],
        n_valid=ds["n_valid"].values,
        criteria=ds["criteria"].values,
        selected=ds["selected"].values,
        delta=ds["delta"].values,
        statistic_name=ds.attrs.get("statistic_name", "chi2"),
        components=json.loads(ds.attrs.get("components", "null")),
    )


def check_candidates(models: Sequence[Any]) -> None:
    """Refuse an empty list, or one holding mappings (joint fits are not selected)."""
    for k, m in enumerate(models):
        if isinstance(m, Mapping):
            raise InputTypeError(
                f"model[{k}] is a mapping of datasets; per-pixel selection is for the "
                f"candidate models of one cube"
            )
