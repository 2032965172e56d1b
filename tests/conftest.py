"""Fixtures shared by the test modules.

The helper modules of the tests (``_compare``, ``_engines``, ``_real_cubes``,
``_slow_model``) are imported by name: pytest puts this folder on
``sys.path``.
"""

import pytest


@pytest.fixture
def clean_registry():
    """Undo what a test adds to the model registry (``register_model``)."""
    from parfit.models import MODEL_REGISTRY

    saved = dict(MODEL_REGISTRY)
    yield MODEL_REGISTRY
    MODEL_REGISTRY.clear()
    MODEL_REGISTRY.update(saved)
