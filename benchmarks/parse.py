"""Decoding speed and size: events decoded per second for a typical alarm and for a keep-alive, on one core.

Each rate is the best of several timed rounds (the best round is the one least disturbed by the rest of the
machine). The baseline, measured in the same run on the same bytes, is lxml parsing the document with the same
hardened parser options and doing nothing else: the ratio says how much of the decoding time is our own work
on top of the XML parser.

The size of a decoded event is what tracemalloc counts for each of 1,000 decoded events held in a list (its
objects, dicts and strings; the frame header strings it shares with the received headers are not counted).
Events held during a resync are kept decoded, so this is their cost in memory.

Usage: python benchmarks/parse.py [--seconds S]     (the last line of output is one JSON object)
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone

from lxml import etree

from nfmp_client import EventHeader, KeepAliveEvent, ObjectCreation
from nfmp_client.codec import decode_message, encode_event

TARGET_ALARM_EVENTS_PER_S = 40_000
TARGET_RATIO_TO_PARSE_ONLY = 0.7
HELD_EVENTS = 1_000

ALARM = ObjectCreation(
    header=EventHeader(
        event_name="ObjectCreation",
        object_type="fm.AlarmObject",
        nt_type="NT_ALARM",
        category="FAULT",
        os_time=datetime(2026, 11, 23, 9, 30, 12, 345000, tzinfo=timezone.utc),
        extra={
            "ALA_allomorphic": "",
            "ALA_isVessel": "false",
            "ALA_OLC": "0",
            "ALA_span": ":2:",
            "ALA_isCorr": "false",
            "ALA_alarmType": "equipmentAlarm",
            "MTOSI_objectName": "network:10.10.10.1|shelf-1|cardSlot-1|card|port-1/1/3|alarm-10-3-8",
            "MTOSI_perceivedSeverity": "major",
            "MTOSI_probableCause": "linkDown",
            "MTOSI_serviceAffecting": "true",
        },
    ),
    object_class="fm.AlarmInfo",
    attributes={
        "objectFullName": "network:10.10.10.1|shelf-1|cardSlot-1|card|port-1/1/3|alarm-10-3-8",
        "affectedObjectFullName": "network:10.10.10.1|shelf-1|cardSlot-1|card|port-1/1/3",
        "affectedObjectClassName": "equipment.PhysicalPort",
        "alarmName": "LinkDown",
        "alarmType": "communicationsAlarm",
        "alarmClassTag": "linkDown",
        "severity": "major",
        "previousSeverity": "cleared",
        "highestSeverity": "major",
        "probableCause": "linkDown",
        "specificProblem": "Port 1/1/3 operationally down",
        "additionalText": "Far-end link failure on port 1/1/3",
        "nodeId": "10.10.10.1",
        "nodeName": "PE-Paris-01",
        "isAcknowledged": "false",
        "isImplicitlyCleared": "false",
        "isServiceAffecting": "true",
        "numberOfOccurences": "1",
        "firstTimeDetected": "1795426212345",
        "lastTimeDetected": "1795426212345",
        "statusChangeTime": "1795426212345",
        "olcState": "0",
    },
)
KEEPALIVE = KeepAliveEvent(
    header=EventHeader(
        event_name="KeepAliveEvent",
        object_type="KeepAliveEvent",
        nt_type="NT_HEARTBEAT",
        category="GENERAL",
        os_time=datetime(2026, 11, 23, 9, 30, 12, tzinfo=timezone.utc),
        extra={"ALA_isVessel": "false", "ALA_OLC": "0"},
    )
)

# The same hardened options as nfmp_client's decoder, for a fair baseline.
BASELINE_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)


def rate(work: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Calls per second of *work*: the best of *rounds* timed rounds of about *seconds* / *rounds* each."""
    batch = 1
    while True:  # size a batch to about 50 ms
        start = time.perf_counter()
        for _ in range(batch):
            work()
        if time.perf_counter() - start > 0.05:
            break
        batch *= 2
    best = 0.0
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / rounds:
            for _ in range(batch):
                work()
            calls += batch
        best = max(best, calls / (time.perf_counter() - start))
    return best


def event_bytes(headers: dict[str, str], body: bytes) -> float:
    """Bytes of Python memory a decoded event holds (tracemalloc, the mean of HELD_EVENTS events held)."""
    decode_message(headers, body)  # warm: what every event shares (name caches) is not counted
    gc.collect()
    tracemalloc.start()
    try:
        held = [decode_message(headers, body) for _ in range(HELD_EVENTS)]
        size, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del held
    return size / HELD_EVENTS


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="timed work per figure (default 3)")
    args = parser.parse_args()

    rows = []
    figures: dict[str, float | int] = {}
    for key, event in (("alarm", ALARM), ("keepalive", KEEPALIVE)):
        message = encode_event(event)
        headers, body = dict(message.headers), message.body
        assert decode_message(headers, body) is not None
        ours = rate(functools.partial(decode_message, headers, body), args.seconds)
        baseline = rate(functools.partial(etree.fromstring, body, BASELINE_PARSER), args.seconds)
        size = event_bytes(headers, body)
        figures[f"{key}_bytes"] = len(body)
        figures[f"{key}_events_per_s"] = round(ours)
        figures[f"{key}_lxml_parse_only_per_s"] = round(baseline)
        figures[f"{key}_ratio_to_parse_only"] = round(ours / baseline, 3)
        figures[f"{key}_decode_us"] = round(1e6 / ours, 2)
        figures[f"{key}_lxml_parse_us"] = round(1e6 / baseline, 2)
        figures[f"{key}_event_bytes"] = round(size)
        rows.append((key, len(body), ours, baseline, size))

    print(
        f"{'message':<10} {'bytes':>6} {'decoded/s':>10} {'us':>6} {'lxml parse/s':>13} {'us':>6} "
        f"{'ratio':>6} {'event bytes':>12}"
    )
    for key, length, ours, baseline, size in rows:
        print(
            f"{key:<10} {length:>6} {ours:>10,.0f} {1e6 / ours:>6.1f} {baseline:>13,.0f} "
            f"{1e6 / baseline:>6.1f} {ours / baseline:>6.2f} {size:>12,.0f}"
        )
    verdict = "meets" if figures["alarm_events_per_s"] >= TARGET_ALARM_EVENTS_PER_S else "MISSES"
    print(f"target: >= {TARGET_ALARM_EVENTS_PER_S:,} alarm events/s on one core: {verdict}")
    verdict = "meets" if figures["alarm_ratio_to_parse_only"] >= TARGET_RATIO_TO_PARSE_ONLY else "MISSES"
    print(f"target: alarm decoding >= {TARGET_RATIO_TO_PARSE_ONLY}x lxml's parse-only rate: {verdict}")
    figures["target_alarm_events_per_s"] = TARGET_ALARM_EVENTS_PER_S
    figures["target_ratio_to_parse_only"] = TARGET_RATIO_TO_PARSE_ONLY
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
