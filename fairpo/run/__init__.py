"""The run layer: a run's configuration and the notebooks' parameters, the trainer, the run store (the
only owner of the run folders' layout), the grid of runs and the ``fairpo`` command."""
