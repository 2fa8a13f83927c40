"""FairPO companion: fair preference optimisation for multi-label learning, from the paper's equations."""

__version__ = "0.1.0"
