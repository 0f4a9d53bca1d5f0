"""geno-lewm-jax: the GenoLeWM action-conditioned JEPA world model for DNA, trained with JAX/Flax.

The JAX side never imports torch; Carbon runs behind the ``bridge`` package.
"""

__version__ = "0.1.0"
