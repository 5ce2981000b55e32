"""Prometheus metrics of an :class:`~nfmp_client.NfmpClient` (the optional extra ``nfmp_client[metrics]``).

The numbers are the client's own (:attr:`~nfmp_client.NfmpClient.statistics`,
:meth:`~nfmp_client.NfmpClient.health`), read when Prometheus scrapes: nothing is added to the path of a
message. Without the extra, read the same numbers from the client object.

Example::

    from prometheus_client import start_http_server
    from nfmp_client.metrics import register

    register(client)            # on the default registry
    start_http_server(9108)     # then scrape http://host:9108/metrics

Exposed (each labelled with ``client_id``): ``nfmp_up`` (1 when connected), ``nfmp_connection_state``
(one-hot by state), ``nfmp_health`` (one-hot by status), ``nfmp_in_sync``, ``nfmp_resync_epoch``,
``nfmp_seconds_since_last_message``, ``nfmp_queue_depth``, ``nfmp_handler_max_seconds``, and the counters
``nfmp_messages_total``, ``nfmp_events_total`` (by ``type``), ``nfmp_system_events_total``,
``nfmp_duplicates_dropped_total``, ``nfmp_malformed_messages_total``, ``nfmp_handler_errors_total``,
``nfmp_handler_seconds_total``, ``nfmp_connections_total``, ``nfmp_connection_losses_total`` (by ``reason``),
``nfmp_failed_attempts_total``, ``nfmp_resyncs_total`` (by ``reason``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import final

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ModuleNotFoundError as _missing:  # the extra is not installed
    if _missing.name is None or _missing.name.partition(".")[0] != "prometheus_client":
        raise
    raise ImportError(
        "nfmp_client.metrics needs the prometheus_client package, which comes with the extra 'metrics': "
        'pip install "nfmp-client[metrics]"',
        name=__name__,
    ) from _missing

from ._client import NfmpClient
from ._public import claim_public_names as _claim_public_names
from ._status import ConnectionState, HealthStatus

__all__ = ["ClientCollector", "register"]


@final
class ClientCollector(Collector):
    """A Prometheus collector that reads one client's statistics and health at each scrape."""

    def __init__(self, client: NfmpClient, *, prefix: str = "nfmp") -> None:
        """Collect *client*'s metrics, named ``<prefix>_...``."""
        self._client = client
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (called by the registry at each scrape)."""
        client, p = self._client, self._prefix
        cid = client.config.client_id
        stats = client.statistics
        health = client.health()

        def gauge(name: str, doc: str, value: float) -> Metric:
            family = GaugeMetricFamily(f"{p}_{name}", doc, labels=["client_id"])
            family.add_metric([cid], value)
            return family

        def counter(name: str, doc: str, value: float) -> Metric:
            family = CounterMetricFamily(f"{p}_{name}", doc, labels=["client_id"])
            family.add_metric([cid], value)
            return family

        def by_label(name: str, doc: str, label: str, values: Mapping[str, int]) -> Metric:
            family = CounterMetricFamily(f"{p}_{name}", doc, labels=["client_id", label])
            for key, value in sorted(values.items()):
                family.add_metric([cid, key], value)
            return family

        yield gauge(
            "up", "1 when connected and subscribed.", float(client.state is ConnectionState.CONNECTED)
        )
        states = GaugeMetricFamily(
            f"{p}_connection_state", "The connection state (one-hot).", labels=["client_id", "state"]
        )
        for state in ConnectionState:
            states.add_metric([cid, state.value], float(client.state is state))
        yield states
        statuses = GaugeMetricFamily(
            f"{p}_health",
            "LIVE / SYNCING / STALE / DOWN / STANDBY (one-hot).",
            labels=["client_id", "status"],
        )
        for status in HealthStatus:
            statuses.add_metric([cid, status.value], float(health.status is status))
        yield statuses
        yield gauge("in_sync", "1 when the last resync completed and none is due.", float(client.in_sync))
        yield gauge("resync_epoch", "The epoch of the last resync requested.", client.resync_epoch)
        since = stats.seconds_since_last_message
        yield gauge(
            "seconds_since_last_message",
            "Seconds since the last message (-1: none yet).",
            -1.0 if since is None else since,
        )
        yield gauge("queue_depth", "Messages decoded and waiting for the handler.", stats.queue_depth)
        yield gauge("handler_max_seconds", "The longest single on_event call.", stats.handler_max_seconds)
        yield counter("messages", "Messages received, of every kind.", stats.messages)
        yield by_label("events", "Data events handled, by class.", "type", stats.events_by_type)
        yield counter("system_events", "System events handled (keep-alives included).", stats.system_events)
        yield counter("duplicates_dropped", "Redeliveries of handled messages dropped.", stats.duplicates)
        yield counter("malformed_messages", "Undecodable messages reported.", stats.malformed)
        yield counter("handler_errors", "Callbacks that raised.", stats.handler_errors)
        yield counter("handler_seconds", "Seconds spent in on_event.", stats.handler_seconds)
        yield counter("connections", "Connections made (subscribed).", stats.connections)
        yield by_label(
            "connection_losses",
            "Established connections that ended, by reason.",
            "reason",
            stats.losses_by_reason,
        )
        yield counter("failed_attempts", "Connection attempts that failed.", stats.failed_attempts)
        yield by_label("resyncs", "Resync requests, by main reason.", "reason", stats.resyncs_by_reason)


def register(
    client: NfmpClient, registry: CollectorRegistry = REGISTRY, *, prefix: str = "nfmp"
) -> ClientCollector:
    """Register a :class:`ClientCollector` for *client* on *registry* (default: the global one); return it.

    Unregister it (``registry.unregister(collector)``) when the client is retired.
    """
    collector = ClientCollector(client, prefix=prefix)
    registry.register(collector)
    return collector


_claim_public_names(globals(), __all__, __name__)
