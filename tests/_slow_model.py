"""A Gaussian that takes its time, for tests that interrupt a run."""

import time

from parfit.models import Gaussian1D


class SlowGaussian(Gaussian1D):
    """Gaussian1D that sleeps at every evaluation (runs on the numpy engine)."""

    delay = 0.01

    def _evaluate(self, x, amplitude, mean, stddev):
        time.sleep(self.delay)
        return super()._evaluate(x, amplitude, mean, stddev)

    def _jacobian(self, x, amplitude, mean, stddev):
        time.sleep(self.delay)
        return super()._jacobian(x, amplitude, mean, stddev)
