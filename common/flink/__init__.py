"""Flink's REST API: the client, cluster access, versions, job ids."""
