"""Config documents the unit tests share."""

CLUSTER = """\
apiVersion: flinksched/v1
kind: FlinkCluster
metadata: {name: default}
spec: {restUrl: "http://localhost:8081"}
"""
