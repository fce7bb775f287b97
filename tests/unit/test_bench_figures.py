"""The bench's pure pieces: percentiles, /proc parsing, ProducerPerformance's summary."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from bench import procstat, stats
from bench.limits import producer_perf
from bench.observers import LagSample, caught_up


def test_percentiles_are_nearest_rank_so_every_figure_was_observed() -> None:
    values = [float(n) for n in range(1, 101)]
    assert stats.percentile(values, 0.50) == 50
    assert stats.percentile(values, 0.99) == 99
    assert stats.percentile([7.0], 0.99) == 7
    summary = stats.summarise(reversed(values))
    assert summary == {"count": 100, "p50": 50, "p95": 95, "p99": 99, "max": 100}


def test_an_empty_hop_summarises_to_nothing_rather_than_zero() -> None:
    assert stats.summarise([]) == {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    assert stats.rate(10, 0) == 0.0
    with pytest.raises(ValueError, match="no values"):
        stats.percentile([], 0.5)


def test_proc_stat_is_read_after_the_command_name_whatever_it_holds() -> None:
    fields = ["S", "1", "4242"] + ["0"] * 8 + ["250", "50"] + ["0"] * 30
    text = "4243 (java (kafka) x) " + " ".join(fields)
    group, cpu_s = procstat.parse_stat(text)
    assert group == 4242
    assert cpu_s == pytest.approx(300 / procstat.TICKS_PER_S)


def test_resident_memory_comes_from_vmrss() -> None:
    assert procstat.parse_rss("Name:\tpython\nVmHWM:\t  9000 kB\nVmRSS:\t  2048 kB\n") == 2 * 2**20
    assert procstat.parse_rss("Name:\tkthreadd\n") == 0


def test_cpu_delta_counts_what_appeared_meanwhile() -> None:
    assert procstat.cpu_delta({"a": 1.0}, {"a": 1.5, "b": 2.0}) == {"a": 0.5, "b": 2.0}


def test_machine_busy_share_leaves_out_idle_and_iowait_of_every_cpu() -> None:
    before = procstat.parse_machine_stat(
        "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"
    )
    after = procstat.parse_machine_stat("cpu  250 10 90 900 60 5 5 0 7 0\n")
    assert (before.busy, before.total) == (150, 1000)
    # busy grew by 150 user + 10 nice + 40 system + 5 irq + 5 softirq = 210 ticks, idle and
    # iowait by 110 (guest, 7, is inside user already)
    assert procstat.busy_percent(before, after) == pytest.approx(65.6)
    assert procstat.busy_percent(after, after) is None
    assert procstat.machine_ticks().total > 0  # this machine's own /proc/stat parses


def test_producer_performance_summary_is_parsed_from_the_last_line() -> None:
    output = (
        "49985 records sent, 9997.0 records/sec (4.88 MB/sec), 12.1 ms avg latency, 90.0 ms max"
        " latency.\n"
        "100000 records sent, 45045.0 records/sec (21.99 MB/sec), 512.3 ms avg latency, 910.00"
        " ms max latency, 498 ms 50th, 850 ms 95th, 900 ms 99th, 910 ms 99.9th.\n"
    )
    found = producer_perf.parse(output)
    assert found.records == 100_000
    assert found.records_per_s == 45045.0
    assert found.mb_per_s == 21.99
    assert found.p99_latency_ms == 900
    with pytest.raises(ValueError, match="no ProducerPerformance summary"):
        producer_perf.parse("Exception in thread main")


def test_consumers_caught_up_once_every_group_committed_what_there_was_at_load_stop() -> None:
    lifecycle, requests = TopicPartition("lifecycle", 0), TopicPartition("requests", 0)
    at_stop = {lifecycle: 100, requests: 40}

    def sample(routing: int, intake: int) -> LagSample:
        committed = {"routing": {lifecycle: routing}, "intake": {requests: intake}}
        ends = {lifecycle: 130, requests: 40}  # reviewers' decisions keep arriving
        return LagSample(0.0, ends, committed)

    assert not caught_up(sample(99, 40), at_stop)
    assert not caught_up(sample(100, 39), at_stop)
    # Past the backlog, although 20 newer records are not committed yet (the lag is not 0).
    assert caught_up(sample(110, 40), at_stop)
