"""Comparing two FitResults exactly."""

import numpy as np


def assert_same_results(a, b):
    """Every map of ``a`` and ``b`` is identical: parameters, errors, status, chi2, nfev, flags."""
    for name in a.param_names:
        np.testing.assert_array_equal(a.parameters[name], b.parameters[name])
        np.testing.assert_array_equal(a.errors[name], b.errors[name])
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.statistic, b.statistic)
    np.testing.assert_array_equal(a.nfev, b.nfev)
    np.testing.assert_array_equal(a.flags, b.flags)
