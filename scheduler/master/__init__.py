"""The master: leadership, config sync, assignment, the worker pool."""
