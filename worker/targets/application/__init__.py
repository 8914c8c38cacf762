"""A job's own clusters: the launch plan and its launchers."""
