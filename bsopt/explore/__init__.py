"""Phase 2, the explorer: strategies that propose configurations of a design space.

:func:`resolve` turns what a blueprint or the command line asks for into a :class:`Strategy`;
:func:`from_name` reloads the one a study was created with. The strategies: Optuna samplers
(:class:`SamplerStrategy`), every configuration in turn (:class:`GridStrategy`), the exact Pareto
front of estimate-backed spaces (:class:`ExactStrategy`, solver in :mod:`bsopt.explore.exact`), and the
surrogate-corrected front for expensive builds (:class:`SurrogateStrategy`, :mod:`bsopt.explore.surrogate`).
"""

from bsopt.choices import StrategyName
from bsopt.explore.strategies import (
    SAMPLE,
    ExactStrategy,
    GridStrategy,
    SamplerStrategy,
    Strategy,
    SurrogateStrategy,
    from_name,
    resolve,
)

__all__ = ["SAMPLE", "ExactStrategy", "GridStrategy", "SamplerStrategy", "Strategy", "StrategyName",
           "SurrogateStrategy", "from_name", "resolve"]
