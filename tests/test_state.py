"""StateStore: baselines round-trip, bad files get typed errors, and a kill -9 mid-write never corrupts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest
from hypothesis import given, strategies as st

from nfmp_client import StateError, StateFileCorrupt, StateFileLocked, StateFileMismatch
from nfmp_client.state import Baseline, StateStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)

texts = st.text(st.characters(codec="utf-8"), max_size=40)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
baselines = st.builds(
    Baseline,
    client_id=st.from_regex(r"[A-Za-z0-9_.:-]{1,12}@[0-9]{1,3}", fullmatch=True),
    topic=texts,
    selector=texts,
    durable=st.booleans(),
    subscription_name=st.none() | texts,
    sys_start_time=st.none() | st.integers(0, 2**53).map(str),
    jms_start_time=st.none() | st.integers(0, 2**53).map(str),
    primary_ip=st.none() | st.ip_addresses().map(str),
    server=st.none() | texts,
    resync_epoch=st.integers(0, 2**63),
    in_sync=st.booleans(),
    queue=st.none() | texts,
    last_keepalive=st.none() | times,
    keepalive_period=st.none() | st.floats(min_value=0.001, max_value=1e6),
    last_event_at=st.none() | times,
)


def baseline(**overrides: object) -> Baseline:
    values: dict[str, object] = {
        "client_id": "oss1@1",
        "topic": "5620-SAM-topic-xml",
        "selector": "ALA_clientId in ('oss1@1','')",
        "durable": True,
        "sys_start_time": "1795621783680",
    }
    values.update(overrides)
    return Baseline(**values)  # type: ignore[arg-type]


class TestRoundTrip:
    @given(baselines)
    def test_what_is_saved_is_loaded(self, tmp_path_factory: pytest.TempPathFactory, saved: Baseline) -> None:
        """Every baseline comes back equal, with saved_at set."""
        store = StateStore(tmp_path_factory.mktemp("state"))

        written = store.save(saved, now=NOW)

        assert written == attrs.evolve(saved, saved_at=NOW)
        assert store.load(saved.client_id) == written

    def test_nothing_saved_is_none(self, tmp_path: Path) -> None:
        """A first start: no file, no baseline, no error (the directory need not exist)."""
        assert StateStore(tmp_path / "not-yet").load("oss1@1") is None

    def test_the_latest_save_wins(self, tmp_path: Path) -> None:
        """Saving again replaces the file."""
        store = StateStore(tmp_path)
        store.save(baseline(resync_epoch=1), now=NOW)
        store.save(baseline(resync_epoch=2), now=NOW + timedelta(seconds=1))

        loaded = store.load("oss1@1")
        assert loaded is not None
        assert (loaded.resync_epoch, loaded.saved_at) == (2, NOW + timedelta(seconds=1))

    def test_file_per_client_id_safe_name_private(self, tmp_path: Path) -> None:
        """One file per client id, named after it (unsafe characters quoted), readable by the owner only."""
        store = StateStore(tmp_path)
        store.save(baseline(client_id="oss:a@1"), now=NOW)
        store.save(baseline(client_id="oss-b@2"), now=NOW)

        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["oss%3Aa@1.state.json", "oss-b@2.state.json"]
        assert (tmp_path / names[0]).stat().st_mode & 0o777 == 0o600

    def test_remove(self, tmp_path: Path) -> None:
        """remove() deletes the file and says whether there was one."""
        store = StateStore(tmp_path)
        store.save(baseline(), now=NOW)

        assert store.remove("oss1@1") is True
        assert store.remove("oss1@1") is False
        assert store.load("oss1@1") is None

    def test_leftover_temporary_files_are_ignored_then_swept(self, tmp_path: Path) -> None:
        """A write cut short leaves a temporary file: never read, removed by the next save."""
        store = StateStore(tmp_path)
        store.save(baseline(resync_epoch=1), now=NOW)
        leftover = tmp_path / ".oss1@1.state.json.0123.tmp"
        leftover.write_text('{"format": 1, "client_id": "oss1@1", "trunc')

        loaded = store.load("oss1@1")
        assert loaded is not None
        assert loaded.resync_epoch == 1
        store.save(baseline(resync_epoch=2), now=NOW)
        assert not leftover.exists()


class TestBadFiles:
    def write(self, tmp_path: Path, content: str | bytes) -> StateStore:
        store = StateStore(tmp_path)
        path = store.path_for("oss1@1")
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        return store

    def valid_document(self) -> dict[str, object]:
        document: dict[str, object] = {
            "format": 1,
            "client_id": "oss1@1",
            "topic": "t",
            "selector": "s",
            "durable": True,
        }
        return document

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"format": 2}, "state format 2"),
            ({"format": None}, "state format None"),
            ({"durable": "yes"}, "field 'durable' has the wrong type"),
            ({"resync_epoch": True}, "field 'resync_epoch' has the wrong type"),
            ({"resync_epoch": "3"}, "field 'resync_epoch' has the wrong type"),
            ({"surprise": 1}, "unknown field 'surprise'"),
            ({"last_event_at": "yesterday"}, "field 'last_event_at' is not a time"),
            ({"last_event_at": "2026-11-25T12:00:00"}, "has no time zone"),
            ({"last_event_at": 12}, "field 'last_event_at' is not a time"),
        ],
    )
    def test_wrong_content(self, tmp_path: Path, change: dict[str, object], message: str) -> None:
        """Each wrong field is named in a StateFileCorrupt, with the file's path."""
        document = {**self.valid_document(), **change}
        store = self.write(tmp_path, json.dumps(document))

        with pytest.raises(StateFileCorrupt, match=message) as raised:
            store.load("oss1@1")
        assert raised.value.path == store.path_for("oss1@1")

    @pytest.mark.parametrize(
        "content", ["", "{", "[1, 2]", "null", b"\xff\xfe", '{"format": 1}', '{"format": 1, "client_id": 3}']
    )
    def test_unreadable(self, tmp_path: Path, content: str | bytes) -> None:
        """Truncated, not JSON, not an object, incomplete: StateFileCorrupt, never a bare exception."""
        store = self.write(tmp_path, content)

        with pytest.raises(StateFileCorrupt):
            store.load("oss1@1")

    def test_another_clients_file(self, tmp_path: Path) -> None:
        """A file holding another client id's state is refused, not adopted."""
        store = StateStore(tmp_path)
        store.save(baseline(client_id="other@2"), now=NOW)
        store.path_for("other@2").rename(store.path_for("oss1@1"))

        with pytest.raises(StateFileMismatch, match="belongs to client id 'other@2', not 'oss1@1'"):
            store.load("oss1@1")

    def test_unwritable_directory_keeps_the_old_file(self, tmp_path: Path) -> None:
        """A failed save raises StateError and leaves nothing half-written."""
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")

        with pytest.raises(StateError, match="cannot write the state file"):
            StateStore(blocker / "state").save(baseline(), now=NOW)

    def test_errors_are_nfmp_errors(self) -> None:
        """One except clause catches them all."""
        from nfmp_client import NfmpError

        assert issubclass(StateFileCorrupt, StateError)
        assert issubclass(StateFileMismatch, StateError)
        assert issubclass(StateError, NfmpError)


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from nfmp_client.state import Baseline, StateStore

    store = StateStore(sys.argv[1])
    big = "x" * 20000  # a larger file makes a torn write more likely, if writes could tear
    epoch = 0
    print("ready", flush=True)
    while True:
        epoch += 1
        store.save(
            Baseline(client_id="oss1@1", topic="t", selector=big, durable=True, resync_epoch=epoch),
            now=datetime.now(timezone.utc),
        )
    """
)


def test_kill_9_during_writes_never_leaves_an_unreadable_state(tmp_path: Path) -> None:
    """A process saving in a loop is killed with SIGKILL at random moments: the file always loads."""
    rng = random.Random(42)  # noqa: S311  # timing jitter, not cryptography
    last_epoch = 0
    for _ in range(8):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()

        loaded = StateStore(tmp_path).load("oss1@1")
        assert loaded is not None
        assert loaded.resync_epoch >= 1
        assert len(loaded.selector) == 20000
        last_epoch = loaded.resync_epoch
    assert last_epoch > 0


class TestLock:
    def test_a_second_holder_is_refused_naming_the_first(self, tmp_path: Path) -> None:
        """While one client holds a client id's state file, another lock fails and says who holds it."""
        store = StateStore(tmp_path)
        held = store.lock("oss1@1")

        with pytest.raises(StateFileLocked) as refused:
            StateStore(tmp_path).lock("oss1@1")

        assert f"pid {os.getpid()}" in refused.value.holder
        held.release()
        StateStore(tmp_path).lock("oss1@1").release()  # free again

    def test_other_client_ids_are_independent(self, tmp_path: Path) -> None:
        """Locks are per client id."""
        store = StateStore(tmp_path)
        first, second = store.lock("oss1@1"), store.lock("oss2@1")

        assert first.held
        assert second.held
        first.release()
        second.release()
        first.release()  # idempotent
        assert not first.held

    def test_a_process_holding_it_keeps_another_process_out(self, tmp_path: Path) -> None:
        """A lock held by another process refuses this one; when that process dies, the lock is free."""
        script = (
            "import sys, time\n"
            "from nfmp_client.state import StateStore\n"
            f"lock = StateStore({str(tmp_path)!r}).lock('oss1@1')\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n"
        )
        holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(StateFileLocked) as refused:
                StateStore(tmp_path).lock("oss1@1")
            assert f"pid {holder.pid}" in refused.value.holder
        finally:
            holder.kill()
            holder.wait()
            if holder.stdout is not None:
                holder.stdout.close()
        StateStore(tmp_path).lock("oss1@1").release()  # the kernel let it go with the process
