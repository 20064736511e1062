"""Test lab: network namespaces, the echo backend, cluster emulation, the conformance runner."""
