"""The ``likelihood`` section of a config: the statistic, a null hypothesis, profiles.

What ``parallel_fit(statistic=, null=, profile=, n_sigma=, n_sigma_ul=)``
takes, as config keys (:class:`LikelihoodSection`).  The values are checked
here on their own; that the names of ``null`` and ``profile`` are free
parameters of the model is checked against the model the config builds
(:func:`parfit.config.build.check_semantics`), each problem at its key.

Examples
--------
>>> section = LikelihoodSection.model_validate(
...     {"statistic": "cash", "null": {"amplitude_0": 0}, "profile": "amplitude_0"})
>>> arguments = section.arguments()
>>> arguments["statistic"], arguments["null"], arguments["profile"]
('cash', {'amplitude_0': 0.0}, ('amplitude_0',))
>>> LikelihoodSection().arguments()["null"] is None
True
"""

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

# The statistics the engine accepts, so that the schema cannot drift from them.
from parfit.fitters.statistics import LIKELIHOOD_STATISTICS, STATISTICS

__all__ = ["LikelihoodSection"]

_EXAMPLE_NULL = "{amplitude_0: 0}"


def _at(key, message):
    """A problem at ``key`` below the field being validated (its YAML path names it)."""
    return PydanticCustomError(
        "parfit_key", "{message}", {"message": message, "parfit_path": (key,)}
    )


class LikelihoodSection(BaseModel):
    """The statistic each fit minimises, and TS maps and profile likelihoods to compute."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)

    statistic: Literal[tuple(STATISTICS)] = Field(  # type: ignore[valid-type]
        "chi2",
        description="What every fit minimises: 'chi2' (chi-square); 'cash' (the Poisson "
        "likelihood of counts, 2 sum(model - data ln model)); 'cstat' (cash plus a term of the "
        "data alone: a goodness of fit).  cash and cstat fit counts: data never negative, no "
        "input.weights or input.uncertainty",
    )
    null: dict[str, float] | None = Field(
        None,
        description="Parameters held at these values for a null hypothesis, such as "
        f"{_EXAMPLE_NULL}: every pixel is fitted again with them held, giving the maps ts (the "
        "statistic under the null minus the best fit's) and sqrt_ts (signed by the first "
        "parameter's best value minus its null value); a joint fit names "
        "<dataset>.<parameter> (co10.amplitude_0)",
        json_schema_extra={
            "type_label": "mapping of parameter name to number",
            "template_example": _EXAMPLE_NULL,
        },
    )
    profile: list[str] = Field(
        default_factory=list,
        description="Free parameters whose profile-likelihood intervals (maps <p>_lo, <p>_hi: "
        "n_sigma) and upper limits (<p>_ul: n_sigma_ul) are computed for every pixel; an end "
        "that reaches a bound is the bound, with the flag LIMIT_AT_BOUND",
        json_schema_extra={
            "type_label": "list of parameter names",
            "template_example": "[amplitude_0]",
        },
    )
    n_sigma: float = Field(
        1.0,
        gt=0,
        allow_inf_nan=False,
        description="Size of the profile intervals in sigma: where the statistic has risen by "
        "n_sigma**2",
    )
    n_sigma_ul: float = Field(
        2.0,
        gt=0,
        allow_inf_nan=False,
        description="Size of the upper limits in sigma: where the statistic has risen by "
        "n_sigma_ul**2 above the best fit",
    )

    @field_validator("null", mode="before")
    @classmethod
    def _null(cls, value):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(
                f"null must be a mapping of parameter names to their values under the null "
                f"hypothesis, such as {_EXAMPLE_NULL}; got {value!r}"
            )
        if not value:
            raise ValueError(
                f"null is empty: give the parameters held under the null hypothesis, such "
                f"as {_EXAMPLE_NULL}, or leave null out (no TS maps)"
            )
        out = {}
        for key, held in value.items():
            if not isinstance(key, str):
                raise _at(key, f"parameter names are text; got {key!r}")
            if isinstance(held, bool) or not isinstance(held, (int, float)):
                raise _at(
                    key,
                    f"must be a number (the parameter's value under the null hypothesis); "
                    f"got {held!r}",
                )
            if not math.isfinite(held):
                raise _at(key, f"must be a finite number; got {held!r}")
            out[key] = float(held)
        return out

    @field_validator("profile", mode="before")
    @classmethod
    def _profile(cls, value):
        if isinstance(value, str):
            value = [value]  # one name
        if not isinstance(value, list):
            raise ValueError(
                f"profile must be a list of parameter names, such as [amplitude_0]; got {value!r}"
            )
        for k, name in enumerate(value):
            if not isinstance(name, str):
                raise _at(k, f"must be a parameter name; got {name!r}")
            if name in value[:k]:
                raise _at(k, f"{name!r} is named twice")
        return value

    @property
    def counts(self):
        """Whether the statistic is a Poisson likelihood of counts (cash, cstat)."""
        return self.statistic in LIKELIHOOD_STATISTICS

    @property
    def is_default(self):
        """Chi-square, and no TS maps or profiles: what a config without this section runs."""
        return self.statistic == "chi2" and not self.null and not self.profile

    def arguments(self):
        """The keywords of :func:`parfit.parallel_fit` this section gives."""
        return {
            "statistic": self.statistic,
            "null": dict(self.null) if self.null else None,
            "profile": tuple(self.profile) or None,
            "n_sigma": self.n_sigma,
            "n_sigma_ul": self.n_sigma_ul,
        }
