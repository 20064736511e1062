"""Sources of objects: a folder of YAML (standalone) or the Kubernetes API server."""
