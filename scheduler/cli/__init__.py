"""The `flinksched` command line: the composition root of both processes."""
