"""Grid-shaped analyses: sweeps, layer sensitivity, budget search, Pareto fronts."""
