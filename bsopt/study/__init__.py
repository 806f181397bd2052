"""Phase 2 + 3: Optuna studies over a DesignSpace (ask, build, tell), and queries over their results."""
