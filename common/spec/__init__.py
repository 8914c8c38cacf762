"""The job spec: the documents users write, how a config directory is read."""
