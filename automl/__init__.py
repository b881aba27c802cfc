"""automl: one neural architecture search, a family of networks (one per complexity budget).

Implements "Efficient Search of Multiple Neural Architectures with Different Complexities via
Importance Sampling": N categorical distributions, one per regularisation coefficient epsilon,
updated together from samples of their mixture.
"""

__version__ = "0.1.0"
