"""What flinksched tells operators: metrics, endpoints, logs."""
