"""broker._metrics on prometheus_client: the exported text parses with the library's own parser, carries the
process and platform metrics, every hub metric with its name unchanged, and no ``_created`` series."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import _hub  # noqa: F401  (registers the scrape-time gauges, as every hub process does)
from broker import _metrics as metrics


def _families() -> dict[str, str]:
    """Exported family name (as in ``# TYPE``) -> type, read by prometheus_client's text parser."""
    out = {}
    for family in text_string_to_metric_families(metrics.render()):
        out[family.name + "_total" if family.type == "counter" else family.name] = family.type
    return out


def test_the_exported_text_parses_and_has_every_hub_metric_and_the_process_metrics() -> None:
    families = _families()
    for metric in metrics.exported():
        expected = ("counter" if isinstance(metric, metrics.Counter)
                    else "histogram" if isinstance(metric, metrics.Histogram) else "gauge")
        assert families.get(metric.name) == expected, metric.name
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
                 "process_open_fds", "python_info"):
        assert name in families, name
    assert {"nsw_consumer_lag", "nsw_transactional_producers"} <= families.keys()


def test_counters_keep_their_names_and_values_and_export_no_created_series() -> None:
    service = f"unit-{uuid.uuid4().hex[:6]}"
    assert metrics.TRANSACTIONS.value(service) == 0.0
    assert service not in metrics.render()  # reading a count creates no series
    metrics.TRANSACTIONS.inc(service)
    metrics.TRANSACTIONS.inc(service, by=2.5)
    assert metrics.TRANSACTIONS.value(service) == 3.5
    text = metrics.render()
    assert f'nsw_transactions_total{{service="{service}"}} 3.5' in text
    assert "_created" not in text
    assert "nsw_transactions_total_total" not in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("nsw_transactions_total", (("service", service),))] == 3.5


def test_the_latency_histogram_counts_a_value_in_the_first_bucket_at_or_above_it() -> None:
    def buckets() -> dict[str, float]:
        return {s.labels["le"]: s.value for family in text_string_to_metric_families(metrics.render())
                if family.name == "nsw_end_to_end_seconds" for s in family.samples if s.name.endswith("_bucket")}

    before = buckets()
    assert list(before) == [*(repr(b) for b in metrics.LATENCY_BUCKETS), "+Inf"]
    metrics.LATENCY.observe(0.25)  # exactly a bound: counted in le="0.25"
    after = buckets()
    assert after["0.1"] == before["0.1"]
    assert after["0.25"] == before["0.25"] + 1
    assert after["+Inf"] == before["+Inf"] + 1


def test_a_scrape_time_gauge_is_a_custom_collector_read_at_each_scrape() -> None:
    name = f"nsw_unit_gauge_{uuid.uuid4().hex[:6]}"
    rows = [(("b",), 2.0), (("a",), 1.0)]
    metrics.register(metrics.Gauge(name, "A unit test's gauge.", ("service",), lambda: rows))
    try:
        assert f'{name}{{service="a"}} 1.0\n{name}{{service="b"}} 2.0' in metrics.render()  # sorted
        rows.append((("c",), 7.0))
        assert f'{name}{{service="c"}} 7.0' in metrics.render()
        with pytest.raises(ValueError, match="Duplicated"):
            metrics.register(metrics.Gauge(name, "Again.", ("service",), list))
    finally:
        gauge = metrics._EXTRA.pop()
        metrics.REGISTRY.unregister(gauge)
    assert name not in metrics.render()


def test_a_counter_name_without_total_is_refused() -> None:
    with pytest.raises(ValueError, match="ends in _total"):
        metrics.Counter("nsw_unit_bad", "No suffix.")
