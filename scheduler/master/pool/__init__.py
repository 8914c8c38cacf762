"""Where worker processes come from: local, Kubernetes, static."""
