"""bsopt's embedded estimate backend: FINN's analytical estimates, reproduced exactly."""

from bsopt.estimate.base import REGISTRY, EstimateError, NodeModel, estimate_node, register

__all__ = ["REGISTRY", "EstimateError", "NodeModel", "estimate_node", "register"]
