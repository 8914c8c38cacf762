"""flinksim: a Flink REST simulator for scale runs, serving the part of the API flinksched uses.

One process stands in for a session cluster with thousands of jobs. Behaviour is scriptable
over `/_sim/...` (fail or lose a job, add latency, answer errors); `/_sim/stats` counts the
requests per endpoint and the most answered at once (`{"resetPeak": true}` posted to
`/_sim/behaviour` starts that count afresh). tests/e2e/test_flinksim_contract.py runs the
same client calls against the real Flink cluster and against this simulator and compares the
answers' shapes, so the simulator cannot drift from Flink.
"""
