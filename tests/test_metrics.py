"""nfmp_client.metrics: a client's statistics and health in Prometheus' exposition format."""

from __future__ import annotations

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
