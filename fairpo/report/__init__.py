"""The report layer: the paper's numbers, significance statistics, our tables and plots, the verdicts
on the paper's claims, the reproduction audit and the book build. Reads the run store; trains nothing
itself except through :func:`fairpo.run.grid.ensure_grid`."""
