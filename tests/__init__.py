"""nodegate test suite (a package, so test modules never shadow agent, bpf, l7 or lab)."""
