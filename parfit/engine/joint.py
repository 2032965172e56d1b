"""The kernel's part of joint fits: pixels where a dataset is blank, and each dataset's statistic.

A joint fit of a pixel where one dataset has no valid sample is fitted on
the others.  The parameters that only the blank dataset determines (its own
free parameters that no other dataset's tie uses) would have a Jacobian
column of zeros and make the fit singular: they are held at their start
for those pixels, reported NaN (value and error), and the fit is flagged
``DATASET_MISSING``.  Parameters shared through ties keep being fitted by
the datasets that have data, so the pixel stays ``OK``.

Pixels are grouped by which datasets they lack; each group is one batched
fit, so a map with a blank region costs one more call of the fitter, not
one per pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parfit.fitters.base import BlockResult, FitBlock
from parfit.fitters.statistics import statistic_values
from parfit.models.joint import JointModel
from parfit.status import Flag, Status

__all__ = ["dataset_statistics", "fit_joint_block", "statistic_argument", "undetermined"]


def undetermined(model: JointModel, missing: set[str]) -> list[int]:
    """Columns of the free parameters that only the ``missing`` datasets' samples determine.

    A free parameter of a missing dataset still counts when a parameter of
    a present dataset is tied to it (directly or through a chain of ties).
    """
    names = model.param_names
    index = {n: i for i, n in enumerate(names)}
    uses = {i: [index[n] for n in expr.names_used] for i, expr, _ in model._tie_plan()}

    def roots(i: int, seen: set[int]) -> set[int]:
        if i not in uses:
            return {i}
        out: set[int] = set()
        for j in uses[i]:
            if j not in seen:
                out |= roots(j, seen | {j})
        return out

    needed: set[int] = set()
    for dataset in model.datasets:
        if dataset in missing:
            continue
        for i in range(*model.param_slice(dataset).indices(len(names))):
            needed |= roots(i, {i})
    free = model.free_mask
    out = []
    for dataset in missing:
        for i in range(*model.param_slice(dataset).indices(len(names))):
            if free[i] and i not in needed:
                out.append(i)
    return sorted(out)


def _present(model: JointModel, valid: np.ndarray) -> np.ndarray:
    """``(n_fits, n_datasets)`` bool: which datasets have a valid sample in each fit."""
    return np.stack([valid[:, model.sample_slice(d)].any(axis=1) for d in model.datasets], axis=1)


def _merge(whole: BlockResult, part: BlockResult, rows: np.ndarray) -> None:
    """Write ``part`` (the fits ``rows``) into ``whole``."""
    whole.params[rows] = part.params
    whole.errors[rows] = part.errors
    whole.statistic[rows] = part.statistic
    whole.status[rows] = part.status
    whole.nfev[rows] = part.nfev
    if part.flags is not None:
        assert whole.flags is not None
        whole.flags[rows] = part.flags
    for k, text in part.messages.items():
        whole.messages[int(rows[int(k)])] = text
    for k, lines in part.warnings.items():
        whole.warnings[int(rows[int(k)])] = lines
    if part.fit_info is not None:
        if whole.fit_info is None:
            whole.fit_info = [None] * len(whole.status)
        for k, info in enumerate(part.fit_info):
            whole.fit_info[int(rows[k])] = info


def fit_joint_block(
    fitter: Any,
    model: JointModel,
    block: FitBlock,
    fit_info: Any,
    fitter_kwargs: dict[str, Any],
    statistic: str = "chi2",
) -> BlockResult:
    """Fit a block of joint fits, pixels lacking a dataset apart (see the module)."""
    kwargs = dict(fit_info=fit_info, fitter_kwargs=fitter_kwargs, **statistic_argument(statistic))
    present: np.ndarray = _present(model, block.valid)
    partial = np.logical_and(~np.all(present, axis=1), np.any(present, axis=1))
    if not partial.any():
        return fitter.fit_block(model, block, **kwargs)
    n_fits, n_params = block.p0.shape
    result = BlockResult.empty(n_fits, n_params)
    # Pixels grouped by which datasets they have (all of them, for the rest).
    key = np.where(partial[:, None], present, True)
    code = key.astype(np.int64) @ (2 ** np.arange(key.shape[1], dtype=np.int64))
    for value in np.unique(code):
        rows = np.flatnonzero(code == value)
        pattern = key[rows[0]]
        missing = {d for d, has in zip(model.datasets, pattern) if not has}
        sub = block.take(rows)
        if not missing:
            part = fitter.fit_block(model, sub, **kwargs)
            _merge(result, part, rows)
            continue
        held = undetermined(model, missing)
        reduced = model.copy()
        for i in held:
            reduced.parameters[model.param_names[i]].fixed = True
        part = fitter.fit_block(reduced, sub, **kwargs)
        ok = part.status == Status.OK
        part.params[:, held] = np.nan
        part.errors[:, held] = np.nan
        if part.flags is None:
            part.flags = np.zeros(len(rows), dtype=np.uint8)
        part.flags[ok] |= np.uint8(Flag.DATASET_MISSING)
        note = (
            f"dataset(s) {', '.join(sorted(missing))} have no valid sample here; fitted on "
            f"the other datasets, and {', '.join(model.param_names[i] for i in held) or 'none'} "
            f"left undetermined (NaN)"
        )
        for r in range(len(rows)):
            part.warnings.setdefault(r, []).append(note)
        _merge(result, part, rows)
    return result


def statistic_argument(statistic: str) -> dict[str, str]:
    """``statistic=`` for a fitter's ``fit_block``, left out for chi-square.

    A fitter written before parfit had statistics (whose ``fit_block`` takes
    no ``statistic``) keeps working for chi-square; for others,
    :meth:`~parfit.fitters.Fitter.check_statistic` refused it before dispatch.
    """
    return {} if statistic == "chi2" else {"statistic": statistic}


def dataset_statistics(
    model: JointModel, block: FitBlock, result: BlockResult, statistic: str = "chi2"
) -> dict[str, Any]:
    """Each dataset's share of the statistic of every fit (NaN where the fit failed)."""
    ok = result.status == Status.OK
    out = {d: np.full(len(ok), np.nan) for d in model.datasets}
    if not ok.any():
        return out
    rows = np.flatnonzero(ok)
    params = np.where(np.isfinite(result.params[rows]), result.params[rows], block.p0[rows])
    xs = tuple(xk if xk.ndim == 1 else xk[rows] for xk in block.x)
    with np.errstate(all="ignore"):
        mu = model.evaluate(*xs, params)
    y, valid = block.y[rows], block.valid[rows]
    w = None if block.weights is None else block.weights[rows]
    for d in model.datasets:
        part = model.sample_slice(d)
        out[d][rows] = statistic_values(
            statistic, y[:, part], mu[:, part], None if w is None else w[:, part], valid[:, part]
        )
    return out
