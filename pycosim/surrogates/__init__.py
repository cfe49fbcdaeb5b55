"""Behavior world: torch surrogates of each block (runs no ngspice)."""

from .crossbar import CrossbarModel
from .integrator import IntegratorModel
from .physical import BlockSurrogate, Param, PhysicalModel
from .registry import model_class, surrogate

__all__ = ["BlockSurrogate", "CrossbarModel", "IntegratorModel", "Param", "PhysicalModel", "model_class", "surrogate"]
