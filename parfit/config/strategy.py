"""The ``strategy`` section of a config: pixels skipped, fits repeated, components ordered.

What ``parallel_fit(min_snr=, refit=, refit_options=, order_components=)``
takes, as config keys (:class:`StrategySection`).  Where each fit starts
(``initial``, ``initial_region``) belongs to the model and is in the
``model`` section; the candidates of a per-pixel model selection are in the
``select`` section (:mod:`parfit.config.schema`).

Examples
--------
>>> section = StrategySection.model_validate({"refit": "neighbours", "max_passes": 5})
>>> arguments = section.arguments()
>>> arguments["refit"], arguments["refit_options"]
('neighbours', {'max_passes': 5, 'outlier': 1.5})
>>> StrategySection().arguments()["refit_options"] is None
True
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The names and defaults the engine uses, so that the schema cannot drift from them.
from parfit.engine.refit import REFIT_METHODS, RefitOptions

__all__ = ["StrategySection"]

#: The keys that tune neighbour refits (they need ``refit: neighbours``).
_REFIT_ONLY = ("max_passes", "outlier")


class StrategySection(BaseModel):
    """Pixels skipped for their noise, fits repeated from their neighbours, components ordered."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)

    min_snr: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Skip the pixels whose peak is below min_snr times their robust noise "
        "(status SKIPPED: not attempted, not a failure); null fits every pixel",
    )
    refit: Literal[REFIT_METHODS] | None = Field(  # type: ignore[valid-type]
        None,
        description="'neighbours': after the first pass, fits that failed, ended on a bound or "
        "whose statistic stands out from their neighbours' are fitted again from the median "
        "of their good neighbours' solutions, pass after pass, the better fit kept (maps "
        "refits and origin); null: no refit",
    )
    max_passes: int = Field(
        RefitOptions().max_passes,
        ge=1,
        description="refit: neighbours only: most refit passes after the first fit (a "
        "solution spreads by one pixel per pass)",
    )
    outlier: float | None = Field(
        RefitOptions().outlier,
        gt=1,
        allow_inf_nan=False,
        description="refit: neighbours only: refit a successful fit whose statistic exceeds "
        "this many times its successful neighbours' (an outlier); null refits only failed "
        "fits and fits on a bound",
    )
    order_components: bool | None = Field(
        None,
        description="Number the components of each fit by position (mean_0 the lowest), so "
        "that neighbours and candidates agree on their names; null: on with refit or select",
    )

    @field_validator(*_REFIT_ONLY)
    @classmethod
    def _refit_only(cls, value, info):
        refit = info.data.get("refit")
        if refit is None and value != cls.model_fields[info.field_name].default:
            raise ValueError(
                f"{info.field_name} applies only to refit: {' or '.join(REFIT_METHODS)}, not null"
            )
        return value

    @property
    def is_default(self):
        """Every pixel fitted once, components as the fits leave them unless refit or select."""
        return self.min_snr is None and self.refit is None and self.order_components is None

    def arguments(self):
        """The keywords of :func:`parfit.parallel_fit` this section gives."""
        return {
            "min_snr": self.min_snr,
            "refit": self.refit,
            "refit_options": None
            if self.refit is None
            else {"max_passes": self.max_passes, "outlier": self.outlier},
            "order_components": self.order_components,
        }

    def describe(self):
        """The section in words (``parfit validate``); ``""`` when it is the default."""
        parts = []
        if self.min_snr is not None:
            parts.append(f"pixels with a peak below {self.min_snr:g} times their noise skipped")
        if self.refit is not None:
            what = "failed fits and fits on a bound"
            if self.outlier is not None:
                what = (
                    f"failed fits, fits on a bound and fits whose statistic exceeds "
                    f"{self.outlier:g} times their neighbours'"
                )
            parts.append(f"refit from the {self.refit}: {what}, at most {self.max_passes} passes")
        if self.order_components is not None:
            parts.append(
                "components ordered by position"
                if self.order_components
                else "components not ordered"
            )
        return "; ".join(parts)
