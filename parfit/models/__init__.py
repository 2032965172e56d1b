"""Models fitted by parfit: built-ins, composition, user models, YAML.

Examples
--------
>>> from parfit.models import Gaussian1D, Const1D
>>> m = Gaussian1D(mean=1.0) + Const1D(0.5)
>>> m.param_names
('amplitude_0', 'mean_0', 'stddev_0', 'amplitude_1')
"""

from parfit.models.base import MODEL_REGISTRY, Model, ParameterSpec, is_model, register_model
from parfit.models.compound import CompoundModel
from parfit.models.function import FunctionModel, model_from_function
from parfit.models.functional_1d import (
    Const1D,
    Gaussian1D,
    Linear1D,
    Lorentz1D,
    Polynomial1D,
    PowerLaw1D,
    Voigt1D,
)
from parfit.models.functional_2d import CircularGaussian2D, Const2D, Gaussian2D
from parfit.models.joint import JointModel
from parfit.models.parameters import Parameter, Parameters
from parfit.models.serialize import from_dict, from_yaml, to_dict, to_yaml

__all__ = [
    "MODEL_REGISTRY",
    "CircularGaussian2D",
    "CompoundModel",
    "Const1D",
    "Const2D",
    "FunctionModel",
    "Gaussian1D",
    "Gaussian2D",
    "JointModel",
    "Linear1D",
    "Lorentz1D",
    "Model",
    "Parameter",
    "ParameterSpec",
    "Parameters",
    "Polynomial1D",
    "PowerLaw1D",
    "Voigt1D",
    "from_dict",
    "from_yaml",
    "is_model",
    "model_from_function",
    "register_model",
    "to_dict",
    "to_yaml",
]
