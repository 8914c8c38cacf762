"""The per-job series: encoded once per export pass, as prometheus_client would, and served
without waiting for the encoding."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from common.store.records import Phase
from common.telemetry import jobseries, leaderview
from common.telemetry.endpoints import Endpoints
from common.telemetry.jobseries import FAMILIES, JobSample, JobSeries

JOB = JobSample(name="orders", cluster="prod", phase=Phase.RUNNING, desired_running=True,
                restarts=3, flink_restarts=1, last_checkpoint=1_764_000_000.25,
                stale_after=600.0, generation=4, observed_generation=4, config_error=False)
JOBS = [
    JOB,
    replace(JOB, name="no-checkpoint-yet", phase=Phase.CRASH_LOOP, last_checkpoint=None,
            deployment="application",
            desired_running=False, config_error=True, checkpoints_durable=False),
    replace(JOB, name='odd "name" \\ with\nnewline', cluster="", restarts=10**12,
            stale_after=0.5),
]


class Reference:
    """The same families built with prometheus_client's own metric families."""

    def __init__(self, jobs: list[JobSample]) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        for family in FAMILIES:
            extra = family.extra
            labels = ["job_name", "cluster", *([extra(JOB)[0]] if extra else [])]
            built: GaugeMetricFamily | CounterMetricFamily = (
                CounterMetricFamily(family.name, family.help, labels=labels)
                if family.kind == "counter"
                else GaugeMetricFamily(family.name, family.help, labels=labels))
            for job in self.jobs:
                value = family.value(job)
                if value is not None:
                    built.add_metric([job.name, job.cluster,
                                      *([extra(job)[1]] if extra else [])], value)
            yield built


def reference(jobs: list[JobSample]) -> bytes:
    registry = CollectorRegistry()
    registry.register(Reference(jobs))
    return generate_latest(registry)


def test_the_series_are_what_prometheus_client_writes_for_the_same_families() -> None:
    assert JobSeries().render(JOBS) == reference(JOBS)
    assert JobSeries().render([]) == reference([])  # headers alone, as before any job


def test_a_pass_encodes_only_the_jobs_whose_sample_changed() -> None:
    series = JobSeries()
    series.render(JOBS)
    assert series.encoded == 3
    moved = replace(JOB, last_checkpoint=JOB.last_checkpoint + 30)  # type: ignore[operator]
    text = series.render([moved, *JOBS[1:]])
    assert series.encoded == 4  # only the job whose checkpoint advanced
    assert text == reference([moved, *JOBS[1:]])
    assert series.render(JOBS[1:]) == reference(JOBS[1:])  # a removed job leaves no line
    assert b'job_name="orders"' not in series.render(JOBS[1:])


@pytest.fixture()
def endpoint() -> Iterator[str]:
    endpoints = Endpoints("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{endpoints.port}/metrics"
    finally:
        endpoints.close()
        leaderview.LEADER_VIEW.clear()


def test_a_scrape_during_a_slow_export_pass_answers_at_once_with_the_last_series_and_their_age(
        endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    leaderview.LEADER_VIEW.publish([JOB], (), lambda: True)
    encoding, release = threading.Event(), threading.Event()
    real = jobseries.job_lines

    def slow(job: JobSample) -> tuple[bytes, ...]:
        encoding.set()
        release.wait(30)  # an export pass stuck while encoding (a loaded machine)
        return real(job)

    monkeypatch.setattr(jobseries, "job_lines", slow)
    changed = replace(JOB, phase=Phase.CRASH_LOOP)
    export = threading.Thread(
        target=leaderview.LEADER_VIEW.publish, args=([changed], (), lambda: True))
    export.start()
    try:
        assert encoding.wait(10)
        started = time.monotonic()
        text = httpx.get(endpoint, timeout=5).text
        assert time.monotonic() - started < 2  # the scrape did not wait for the pass
        assert 'flinksched_job_up{cluster="prod",job_name="orders"} 1.0' in text  # the last
        age = next(line for line in text.splitlines()
                   if line.startswith("flinksched_job_series_age_seconds "))
        assert float(age.split()[1]) >= 0
    finally:
        release.set()
        export.join(10)
    text = httpx.get(endpoint, timeout=5).text
    assert 'flinksched_job_up{cluster="prod",job_name="orders"} 0.0' in text  # the new pass


def test_a_compressed_scrape_is_one_gzip_member_holding_exactly_the_plain_text() -> None:
    live = b"# HELP flinksched_leader 1 while this master is the leader\nflinksched_leader 1.0\n"
    try:
        for published in (False, True):
            if published:
                leaderview.LEADER_VIEW.publish(JOBS, (), lambda: True)
            plain = leaderview.LEADER_VIEW.serve(live, compressed=False)
            body = leaderview.LEADER_VIEW.serve(live, compressed=True)
            # one member: decoders that read only the first (httpx's, for one) miss nothing
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            assert decoder.decompress(body) + decoder.flush() == plain
            assert decoder.eof and decoder.unused_data == b""
            assert plain.endswith(live) and (b'job_name="orders"' in plain) is published
    finally:
        leaderview.LEADER_VIEW.clear()


def test_the_endpoint_compresses_only_for_a_scraper_that_accepts_gzip(endpoint: str) -> None:
    leaderview.LEADER_VIEW.publish(JOBS, (), lambda: True)
    with httpx.Client() as client:
        zipped = client.get(endpoint, headers={"Accept-Encoding": "gzip"})
        plain = client.get(endpoint, headers={"Accept-Encoding": "identity"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert int(zipped.headers["Content-Length"]) < int(plain.headers["Content-Length"]) / 3
    for answer in (zipped, plain):
        assert 'flinksched_job_up{cluster="prod",job_name="orders"} 1.0' in answer.text
