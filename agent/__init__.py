"""nodegate agent: sources, store, the pure translation, NodeConfig, the reconcile loop, the CLI."""
