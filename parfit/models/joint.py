"""Joint models: one model per dataset, fitted together per pixel (Gammapy's "global model").

A :class:`JointModel` holds each dataset's model (its *members*) and lays
their samples end to end: the first dataset's samples, then the second's,
and so on.  Its parameters are the members' parameters named
``"<dataset>.<parameter>"``; a tied expression may name any of them, so
``"co10.mean_0"`` on ``co21.mean_0`` shares a velocity between two cubes
and ``"0.5 * co10.amplitude_0"`` fixes a line ratio.  Evaluating the joint
model evaluates every member on its own samples; its Jacobian is the
members' Jacobians side by side (zero where a parameter does not touch a
dataset), and the chain rule through the ties
(:meth:`~parfit.models.Model.tie_jacobian`) adds the shared columns up.

As in Gammapy's PIG 20, the members are never changed by a fit (the joint
model copies them), and a per-dataset nuisance (a baseline, a background)
is just a component of that dataset's model.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parfit.errors import ModelError, ParameterError
from parfit.models._expr import expression_names, rename_expression
from parfit.models.base import Model
from parfit.models.parameters import Parameter, Parameters

__all__ = ["JointModel", "check_dataset_names", "split_dataset_ties", "tie_names"]


def check_dataset_names(names: Sequence[Any], argname: str = "data") -> None:
    """Refuse dataset names that cannot prefix a parameter (``"<dataset>.<parameter>"``)."""
    if not names:
        raise ModelError(f"{argname}: a joint fit needs at least one dataset; got an empty mapping")
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ModelError(
                f"{argname}: dataset name {name!r} is not usable; dataset names must be Python "
                f"identifiers (letters, digits and underscores, not starting with a digit), "
                f"such as 'co10' or 'halpha', since parameters are named '<dataset>.<parameter>'"
            )


def tie_names(expression: str) -> tuple[str, ...]:
    """The parameters a tie expression names (``"<dataset>.<parameter>"`` kept whole).

    Examples
    --------
    >>> tie_names("0.5 * co10.amplitude + offset")
    ('co10.amplitude', 'offset')
    """
    return expression_names(expression)


def split_dataset_ties(model: Model) -> tuple[Model, dict[str, str]]:
    """A copy of ``model`` without its ties to other datasets, and those ties.

    A dataset's model is checked on its own before the joint model is made,
    and there ``"co10.mean_0"`` names nothing; :meth:`JointModel.tie` puts the
    ties back.

    Examples
    --------
    >>> from parfit.models import Gaussian1D
    >>> g = Gaussian1D(); g.mean.tied = "co10.mean"; g.stddev.tied = "2 * amplitude"
    >>> alone, ties = split_dataset_ties(g)
    >>> alone.mean.tied, alone.stddev.tied, ties
    (None, '2 * amplitude', {'mean': 'co10.mean'})
    """
    model = model.copy()
    across: dict[str, str] = {}
    for p in model.parameters.values():
        if p.tied is not None and any("." in n for n in expression_names(p.tied)):
            across[p.name] = p.tied
            p.update(tied=None)
    return model, across


class JointModel(Model):
    """Several datasets' models fitted together: parameters ``"<dataset>.<parameter>"``.

    Parameters
    ----------
    models : mapping of str to Model
        Each dataset's model (copied), in the order of the samples.  All
        take the same number of inputs.
    sizes : mapping of str to int
        Samples per fit of each dataset (the length of its segment).

    Notes
    -----
    Ties a member wrote in its own names are renamed to the joint names
    (``"mean_0"`` on ``co21`` becomes ``"co21.mean_0"``); ties that name
    ``"<dataset>.<parameter>"`` are kept, and must name a parameter of one
    of the datasets.

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.models import Gaussian1D, JointModel
    >>> co10, co21 = Gaussian1D(1.0, 5.0, 2.0), Gaussian1D(2.0, 0.0, 1.0)
    >>> co21.mean.tied = "co10.mean"
    >>> joint = JointModel({"co10": co10, "co21": co21}, sizes={"co10": 3, "co21": 2})
    >>> joint.param_names
    ('co10.amplitude', 'co10.mean', 'co10.stddev', 'co21.amplitude', 'co21.mean', 'co21.stddev')
    >>> x = np.array([4.0, 5.0, 6.0, 5.0, 6.0])     # co10's three samples, then co21's two
    >>> params = joint.apply_ties(joint.starting_values(()).reshape(1, -1))
    >>> joint.evaluate(x, params).round(3)
    array([[0.882, 1.   , 0.882, 2.   , 1.213]])
    """

    n_inputs: int  # type: ignore[misc]

    def __init__(self, models: Mapping[str, Model], sizes: Mapping[str, int]) -> None:
        if not isinstance(models, Mapping):
            raise ModelError(
                f"JointModel: models must be a mapping of dataset names, got {models!r}"
            )
        names = list(models)
        check_dataset_names(names, "models")
        for name, model in models.items():
            if not isinstance(model, Model) or isinstance(model, JointModel):
                raise ModelError(
                    f"JointModel: the model of dataset {name!r} must be a parfit model, "
                    f"got {model!r}"
                )
        missing = [n for n in names if n not in sizes]
        if missing:
            raise ModelError(f"JointModel: sizes has no entry for dataset(s) {', '.join(missing)}")
        n_inputs = {int(m.n_inputs) for m in models.values()}
        if len(n_inputs) != 1:
            raise ModelError(
                "JointModel: every dataset's model must take the same number of inputs; got "
                + ", ".join(f"{n}: {int(m.n_inputs)}" for n, m in models.items())
            )
        self.__dict__["n_inputs"] = n_inputs.pop()
        self.name = None
        # The members keep their own ties only: those naming another dataset
        # live in the joint parameters (a member alone could not resolve them).
        self._members = {name: split_dataset_ties(models[name])[0] for name in names}
        self._sizes = {name: int(sizes[name]) for name in names}
        params: list[Parameter] = []
        self._param_slices: dict[str, slice] = {}
        self._sample_slices: dict[str, slice] = {}
        start = offset = 0
        for name, model in self._members.items():
            mapping = {p: f"{name}.{p}" for p in model.param_names}
            for p in models[name].parameters.values():
                new = p.copy(name=mapping[p.name])
                if new.tied is not None:
                    new.update(tied=rename_expression(new.tied, mapping))
                params.append(new)
            self._param_slices[name] = slice(start, start + model.n_params)
            self._sample_slices[name] = slice(offset, offset + self._sizes[name])
            start += model.n_params
            offset += self._sizes[name]
        self._params = Parameters(params)
        self._tie_cache = None
        self._check_tie_names()
        #: The datasets whose parameters :meth:`guess` estimates (all by default).
        self.guess_datasets: tuple[str, ...] = tuple(names)

    def _check_tie_names(self) -> None:
        """Refuse ties naming an unknown dataset or parameter, saying which."""
        for p in self._params.values():
            if p.tied is None:
                continue
            for used in expression_names(p.tied):
                if used in self._params:
                    continue
                dataset, _, param = used.rpartition(".")
                if not dataset:
                    continue  # an unknown plain name: the tie compiler says so
                if dataset not in self._members:
                    raise ParameterError(
                        f"Parameter {p.name!r}: tied expression {p.tied!r} names dataset "
                        f"{dataset!r}, which is not one of the datasets "
                        f"({', '.join(self._members)})"
                    )
                raise ParameterError(
                    f"Parameter {p.name!r}: tied expression {p.tied!r} names {used!r}, but "
                    f"dataset {dataset!r} has no parameter {param!r}; its parameters are: "
                    f"{', '.join(self._members[dataset].param_names)}"
                )

    def tie(self, dataset: str, ties: Mapping[str, str]) -> None:
        """Tie parameters of ``dataset``, written in its own names or as ``<dataset>.<name>``.

        ``ties`` maps the dataset's own parameter names to expressions, as
        :func:`split_dataset_ties` returns them.  Names are checked.
        """
        local = {p: f"{dataset}.{p}" for p in self._members[dataset].param_names}
        for param, tied in ties.items():
            self._params[local[param]].tied = rename_expression(tied, local)
        self._check_tie_names()

    # ------------------------------------------------------------------
    @property
    def datasets(self) -> tuple[str, ...]:
        """The dataset names, in the order of their samples."""
        return tuple(self._members)

    @property
    def sizes(self) -> dict[str, int]:
        """Samples per fit of each dataset."""
        return dict(self._sizes)

    def sample_slice(self, dataset: str) -> slice:
        """The samples of ``dataset`` in a joint row."""
        return self._sample_slices[dataset]

    def param_slice(self, dataset: str) -> slice:
        """The columns of ``dataset``'s parameters in :attr:`param_names`."""
        return self._param_slices[dataset]

    @property
    def has_analytic_jacobian(self) -> bool:  # type: ignore[override]
        """True when every member has an analytic Jacobian."""
        return all(m.has_analytic_jacobian for m in self._members.values())

    def member(self, dataset: str) -> Model:
        """A copy of ``dataset``'s model with the joint model's current values.

        Ties to other datasets cannot be written in the member's own names
        and are dropped on the copy (their current values are kept).

        Examples
        --------
        >>> from parfit.models import Gaussian1D, JointModel
        >>> b = Gaussian1D(); b.mean.tied = "a.mean"
        >>> joint = JointModel({"a": Gaussian1D(mean=3.0), "b": b}, sizes={"a": 5, "b": 5})
        >>> joint.member("b")
        <Gaussian1D(amplitude=1.0, mean=0.0, stddev=1.0)>
        """
        return self._member(dataset, keep_across=False)

    def _member(self, dataset: str, keep_across: bool) -> Model:
        model = self._members[dataset].copy()
        prefix = f"{dataset}."
        back = {f"{prefix}{n}": n for n in model.param_names}
        for local in model.param_names:
            joint = self._params[f"{prefix}{local}"]
            own = model.parameters[local]
            own.update(value=joint.value, bounds=joint.bounds, fixed=joint.fixed)
            tied = joint.tied
            if tied is not None and (keep_across or all(n in back for n in expression_names(tied))):
                own.update(tied=rename_expression(tied, back))
            else:
                own.update(tied=None)
        return model

    def dataset_models(self) -> dict[str, Model]:
        """Every dataset's model as given to a joint fit: ties to other datasets kept.

        The form :func:`parfit.models.to_yaml` writes and ``parallel_fit``
        takes (``{dataset: model}``).

        Examples
        --------
        >>> from parfit.models import Gaussian1D, JointModel
        >>> b = Gaussian1D(); b.mean.tied = "a.mean"
        >>> joint = JointModel({"a": Gaussian1D(), "b": b}, sizes={"a": 5, "b": 5})
        >>> joint.dataset_models()["b"].mean.tied
        'a.mean'
        """
        return {name: self._member(name, keep_across=True) for name in self._members}

    @property
    def members(self) -> dict[str, Model]:
        """Every dataset's model (see :meth:`member`)."""
        return {name: self.member(name) for name in self._members}

    # ------------------------------------------------------------------
    # evaluation
    def _declared_specs(self) -> tuple[Any, ...]:
        return ()

    def _segments(
        self, xs: Sequence[np.ndarray], params: np.ndarray
    ) -> list[tuple[Model, list[np.ndarray], np.ndarray, slice, slice]]:
        out = []
        for name, model in self._members.items():
            samples, cols = self._sample_slices[name], self._param_slices[name]
            out.append((model, [x[:, samples] for x in xs], params[:, cols], samples, cols))
        return out

    def _rows(self, xs: Sequence[np.ndarray], params: np.ndarray) -> int:
        return max([params.shape[0]] + [x.shape[0] for x in xs])

    def _value(self, xs: Sequence[np.ndarray], params: np.ndarray) -> Any:
        n_samples = sum(self._sizes.values())
        out = np.empty((self._rows(xs, params), n_samples), dtype=np.float64)
        for model, seg_x, seg_params, samples, _ in self._segments(xs, params):
            out[:, samples] = model._value(seg_x, seg_params)
        return out

    def _jac_into(self, xs: Sequence[np.ndarray], params: np.ndarray, out: np.ndarray) -> Any:
        n_samples = sum(self._sizes.values())
        value = np.empty((self._rows(xs, params), n_samples), dtype=np.float64)
        out[...] = 0.0
        for model, seg_x, seg_params, samples, cols in self._segments(xs, params):
            value[:, samples] = model._jac_into(seg_x, seg_params, out[:, samples, cols])
        return value

    # ------------------------------------------------------------------
    # starting values and quality
    @property
    def can_guess(self) -> bool:
        """True when the model of every dataset in :attr:`guess_datasets` can guess."""
        return all(self._members[n].can_guess for n in self.guess_datasets)

    def _cannot_guess_detail(self) -> str:
        cannot = [n for n, m in self._members.items() if not m.can_guess]
        return f"; in this joint model the model of {', '.join(cannot)} cannot"

    def _guess_array(
        self,
        xs: list[np.ndarray],
        y: np.ndarray,
        valid: np.ndarray,
        start: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> np.ndarray:
        """Each dataset's model guesses from its own samples; shared parameters keep ``start``.

        A parameter tied to another dataset's is not free in the joint model:
        its start stays (the ties are applied after the guess).  A fit with no
        valid sample of a dataset keeps that dataset's start, as do the
        datasets not in :attr:`guess_datasets`.
        """
        out = start.copy()
        free = self.free_mask
        for name, model in self._members.items():
            if name not in self.guess_datasets:
                continue
            samples, cols = self._sample_slices[name], self._param_slices[name]
            use = valid[:, samples]
            has = use.any(axis=1)
            if not has.any():
                continue
            guessed = model._guess_array(
                [x[:, samples] for x in xs],
                y[:, samples],
                use,
                start[:, cols],
                lower[:, cols],
                upper[:, cols],
            )
            keep = ~free[cols]
            guessed[:, keep] = start[:, cols][:, keep]
            out[has, cols] = guessed[has]
        return out

    def peak_amplitude_indices(self) -> list[int]:
        """Positions of every member's peak amplitudes in :attr:`param_names`."""
        return [
            self._param_slices[name].start + i
            for name, model in self._members.items()
            for i in model.peak_amplitude_indices()
        ]

    def collapsed_segments(self) -> list[tuple[Model, slice, slice]]:
        """``(model, samples, parameter columns)`` of each dataset: see ``fitters.quality``."""
        return [
            (model, self._sample_slices[name], self._param_slices[name])
            for name, model in self._members.items()
        ]

    def collapsed(self, params: Any, lo: Any, hi: Any, step: Any, free: Any = None) -> np.ndarray:
        """Where a member's peak collapsed, each judged on the extent given (see the base class).

        The extent of the joint samples means little; the quality checks
        judge each dataset on its own samples (:meth:`collapsed_segments`).
        """
        params = np.asarray(params, dtype=np.float64)
        out = np.zeros(params.shape[0], dtype=bool)
        fitted = np.ones(self.n_params, bool) if free is None else np.asarray(free, bool)
        for model, _, cols in self.collapsed_segments():
            out |= model.collapsed(params[:, cols], lo, hi, step, fitted[cols])
        return out

    def _parameter_units(self, input_units: Sequence[Any], output_unit: Any) -> dict[str, Any]:
        """Every member's parameter units for the same inputs and output, prefixed.

        (``parallel_fit`` works out each dataset's units on its own; this
        serves the solver's scaling of amplitudes.)
        """
        out: dict[str, Any] = {}
        for name, model in self._members.items():
            units = model._parameter_units(input_units, output_unit)
            out.update({f"{name}.{p}": unit for p, unit in units.items()})
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={m!r}" for n, m in self._members.items())
        return f"<JointModel({inner})>"
