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


class PoisonGaussian(Gaussian1D):
    """Gaussian1D that kills its process (SIGSEGV) when a fit starts at amplitude 666."""

    def _evaluate(self, x, amplitude, mean, stddev):
        import os
        import signal

        import numpy as np

        if np.any(amplitude == 666.0):
            os.kill(os.getpid(), signal.SIGSEGV)
        return super()._evaluate(x, amplitude, mean, stddev)


class HangingGaussian(Gaussian1D):
    """Gaussian1D that never returns when a fit starts at amplitude 13 (a hung model).

    It loops in Python (sleeping a little each turn), as a model waiting on
    something that never comes would.
    """

    def _evaluate(self, x, amplitude, mean, stddev):
        import numpy as np

        if np.any(amplitude == 13.0):
            while True:
                time.sleep(0.01)
        return super()._evaluate(x, amplitude, mean, stddev)
