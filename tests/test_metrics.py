"""nfmp_client.metrics: a client's statistics and health in Prometheus' exposition format."""

from __future__ import annotations

import importlib
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nfmp_client import ClientConfig, Handler, NfmpClient
from nfmp_client.metrics import ClientCollector, register


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_stopped_client_is_down_with_zero_counts() -> None:
    """A client never started: up 0, state stopped, health down, counters at zero, no message yet (-1)."""
    client = NfmpClient(ClientConfig(servers=["127.0.0.1:1"], client_id="oss1@1"), Handler())
    registry = CollectorRegistry()
    collector = register(client, registry)

    values = samples(registry)
    cid = (("client_id", "oss1@1"),)
    assert isinstance(collector, ClientCollector)
    assert values[("nfmp_up", cid)] == 0
    assert values[("nfmp_connection_state", (("client_id", "oss1@1"), ("state", "stopped")))] == 1
    assert values[("nfmp_connection_state", (("client_id", "oss1@1"), ("state", "connected")))] == 0
    assert values[("nfmp_health", (("client_id", "oss1@1"), ("status", "down")))] == 1
    assert values[("nfmp_messages_total", cid)] == 0
    assert values[("nfmp_seconds_since_last_message", cid)] == -1
    assert values[("nfmp_resync_epoch", cid)] == 0


def test_prefix_and_unregister() -> None:
    """Another prefix renames every metric; unregistering removes them."""
    client = NfmpClient(ClientConfig(servers=["127.0.0.1:1"], client_id="oss2@1"), Handler())
    registry = CollectorRegistry()
    collector = register(client, registry, prefix="oss")

    names = {name for name, _ in samples(registry)}
    assert names
    assert all(name.startswith("oss_") for name in names)
    registry.unregister(collector)
    assert samples(registry) == {}


def test_without_the_extra_the_import_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus_client, importing nfmp_client.metrics says which extra to install (chained)."""
    for name in [name for name in sys.modules if name.partition(".")[0] == "prometheus_client"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what an uninstalled package looks like
    monkeypatch.delitem(sys.modules, "nfmp_client.metrics")

    with pytest.raises(ImportError, match=r'pip install "nfmp-client\[metrics\]"') as caught:
        importlib.import_module("nfmp_client.metrics")

    assert type(caught.value) is ImportError  # not a bare ModuleNotFoundError
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)
    assert caught.value.__cause__.name == "prometheus_client"
