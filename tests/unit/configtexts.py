"""Config documents the unit tests share."""

CLUSTER = """\
apiVersion: flinksched/v1
kind: FlinkCluster
metadata: {name: default}
spec: {restUrl: "http://localhost:8081"}
"""

# A job document up to its job section; "%s" is the job's name.
JOB_HEAD = """\
apiVersion: flinksched/v1
kind: FlinkJob
metadata: {name: %s}
spec:
  job:
"""
