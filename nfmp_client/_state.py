"""The persisted baseline: what the client knew about the server when it was last in sync.

Nokia's resync rules compare what the server says now (``sysStartTime``, ``jmsStartTime``, the primary's IP,
in each SystemInfoEvent) with what it said before; "before" must survive a restart of the OSS itself, or an
OSS that was down during a server restart would never notice it. So the baseline lives in a small JSON file
per client id, written atomically (a new file, flushed and fsynced, then renamed over the old one, then the
directory fsynced): a crash or a ``kill -9`` at any instant leaves either the old file or the new one, never a
mix. A file that cannot be read is reported as :class:`StateFileCorrupt`; a file of another client id as
:class:`StateFileMismatch`; the client never silently starts from nothing. Why the identity is compared as
opaque text, and where the rules come from: see docs/background.rst, 'The server's identity'; what to do about
a locked or corrupt file: docs/troubleshooting.rst, 'The state file: locked, corrupt, not writable'.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, final

import attrs
from attrs import field, frozen

from ._exceptions import NfmpError

__all__ = [
    "STATE_FORMAT",
    "Baseline",
    "StateError",
    "StateFileCorrupt",
    "StateFileLocked",
    "StateFileMismatch",
    "StateLock",
    "StateStore",
]

STATE_FORMAT: Final = 1
"""The version of the state file's layout; a file of a newer version is refused, not misread."""

_SUFFIX: Final = ".state.json"


class StateError(NfmpError):
    """The persisted state cannot be used."""

    def __init__(self, message: str, *, path: Path) -> None:
        """Say what is wrong with the state file at *path*."""
        super().__init__(f"{path}: {message}")
        self.path = path
        """The state file concerned."""


class StateFileCorrupt(StateError):
    """The state file is not a state file this version can read (truncated by hand, edited, newer format).

    The atomic writes of :class:`~nfmp_client.state.StateStore` never produce one; something else wrote it.
    Remove the file to start over: the client then resyncs as on a first start.
    """


class StateFileMismatch(StateError):
    """The state file belongs to another client id (two clients configured with one state file)."""


class StateFileLocked(StateError):
    """Another client holds this client id's state file.

    Two processes (or two clients in one process) run with the same client id and state directory: they
    would overwrite each other's baseline, and the broker would refuse one of them anyway (client id in use).
    Stop the other one first; ``holder`` says who it is, as it wrote itself into the lock file.
    """

    def __init__(self, message: str, *, path: Path, holder: str) -> None:
        """Say who holds the lock of *path*."""
        super().__init__(message, path=path)
        self.holder = holder
        """The holder, as it described itself (``pid 1234 on host-a since 2026-11-30T20:00:00+00:00``)."""


@final
class StateLock:
    """The exclusive hold of one client id's state file, while a client uses it (see :meth:`StateStore.lock`).

    A lock file beside the state file (the state file itself is replaced on every write) is locked with
    ``flock``; the operating system releases it when the process ends, however it ends.
    """

    def __init__(self, path: Path, descriptor: int) -> None:
        """Hold *descriptor*, locked, for *path*."""
        self.path = path
        """The lock file."""
        self._descriptor: int | None = descriptor

    @property
    def held(self) -> bool:
        """Whether it is still held."""
        return self._descriptor is not None

    def release(self) -> None:
        """Let the state file go (idempotent)."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)

    def __repr__(self) -> str:
        """Show the lock file and whether it is held."""
        return f"<StateLock {self.path} {'held' if self.held else 'released'}>"


def _texts(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@frozen(kw_only=True)
class Baseline:
    """What the client knew when it last had it: the server's identity and the subscription it had."""

    client_id: str
    """The OSS client id the baseline belongs to."""
    topic: str
    """The topic subscribed to."""
    selector: str
    """The subscription's selector (a changed selector on a durable subscription drops its backlog)."""
    durable: bool
    """Whether the subscription was durable."""
    subscription_name: str | None = None
    """The durable subscription's name."""
    queue: str | None = None
    """The queue consumed instead of the topic, if any."""
    sys_start_time: str | None = None
    """``sysStartTime`` of the last SystemInfoEvent (compared as an opaque string)."""
    jms_start_time: str | None = None
    """``jmsStartTime`` of the last SystemInfoEvent."""
    primary_ip: str | None = None
    """``sysPrimaryIp`` of the last SystemInfoEvent."""
    server: str | None = None
    """The broker endpoint (``host:port``) last connected to."""
    resync_epoch: int = 0
    """The epoch of the last resync requested (0: none yet)."""
    in_sync: bool = False
    """Whether the application completed the resync of *resync_epoch* (a crash during a resync means
    another one)."""
    owed: tuple[str, ...] = field(default=(), converter=_texts)
    """The reasons (:class:`~nfmp_client.ResyncReason` values) of a resync that is owed and not completed
    yet: written before the message that called for it is acknowledged, cleared once the resync completed
    and its held events were replayed. A process that dies meanwhile leaves them for the next one."""
    owed_evidence: Mapping[str, str] = field(factory=dict, hash=False)
    """What showed them (old and new ``sysStartTime``, ...), as in :attr:`ResyncRequest.evidence`."""
    last_keepalive: datetime | None = None
    """The server time (``MTOSI_osTime``, aware UTC) of the last KeepAliveEvent received: the continuity check
    judges the first one after a reconnect, or after a restart of the application, against it. Written before
    that keep-alive is acknowledged."""
    keepalive_period: float | None = None
    """The keep-alive period learned from the stream, in seconds (None: not learned yet)."""
    last_event_at: datetime | None = None
    """When the last event was handled (aware UTC)."""
    saved_at: datetime | None = None
    """When this baseline was written (aware UTC); set by :meth:`StateStore.save`."""


_TEXT: Final = (str, type(None))
_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "client_id": (str,),
    "topic": (str,),
    "selector": (str,),
    "durable": (bool,),
    "subscription_name": _TEXT,
    "queue": _TEXT,
    "sys_start_time": _TEXT,
    "jms_start_time": _TEXT,
    "primary_ip": _TEXT,
    "server": _TEXT,
    "resync_epoch": (int,),
    "in_sync": (bool,),
    "owed": (tuple,),
    "owed_evidence": (dict,),
    "last_keepalive": (datetime, type(None)),
    "keepalive_period": (float, int, type(None)),
    "last_event_at": (datetime, type(None)),
    "saved_at": (datetime, type(None)),
}
"""What a file may hold for each field (JSON has no dates: those are ISO 8601 text in the file)."""
_DATETIME_FIELDS: Final = frozenset({"last_keepalive", "last_event_at", "saved_at"})


def _to_json(baseline: Baseline) -> dict[str, Any]:
    document: dict[str, Any] = {"format": STATE_FORMAT}
    for name, value in attrs.asdict(baseline, recurse=False).items():
        document[name] = value.isoformat() if isinstance(value, datetime) else value
    return document


def _from_json(document: object, path: Path) -> Baseline:
    if not isinstance(document, dict):
        raise StateFileCorrupt("not a JSON object", path=path)
    version = document.get("format")
    if version != STATE_FORMAT:
        raise StateFileCorrupt(
            f"state format {version!r}; this version reads format {STATE_FORMAT}", path=path
        )
    values: dict[str, Any] = {}
    for name, raw in document.items():
        if name == "format":
            continue
        if name not in _TYPES:
            raise StateFileCorrupt(f"unknown field {name!r}", path=path)
        values[name] = _read_time(name, raw, path) if name in _DATETIME_FIELDS and raw is not None else raw
    try:
        baseline = Baseline(**values)
    except TypeError as exc:
        raise StateFileCorrupt(f"incomplete: {exc}", path=path) from None
    for name, expected in _TYPES.items():
        value = getattr(baseline, name)
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            raise StateFileCorrupt(f"field {name!r} has the wrong type: {value!r}", path=path)
    if not all(isinstance(reason, str) for reason in baseline.owed) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in baseline.owed_evidence.items()
    ):
        raise StateFileCorrupt("fields 'owed' and 'owed_evidence' must hold text only", path=path)
    return baseline


def _read_time(name: str, raw: object, path: Path) -> datetime:
    try:
        value = datetime.fromisoformat(raw)  # type: ignore[arg-type]  # a TypeError is caught
    except (TypeError, ValueError):
        raise StateFileCorrupt(f"field {name!r} is not a time: {raw!r}", path=path) from None
    if value.tzinfo is None:
        raise StateFileCorrupt(f"field {name!r} has no time zone: {raw!r}", path=path)
    return value


@final
class StateStore:
    """State files of one directory, one per client id, written atomically.

    Example::

        store = StateStore("/var/lib/my-oss/nfmp")
        baseline = store.load("oss1@1")        # None on a first start
        store.save(attrs.evolve(baseline, sys_start_time="1795621783680"))
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Keep state files in *directory* (created on the first save)."""
        self.directory = Path(directory)
        """Where the state files are."""

    def __repr__(self) -> str:
        """Show the directory."""
        return f"StateStore({str(self.directory)!r})"

    def path_for(self, client_id: str) -> Path:
        """Return the state file of *client_id* (its name is the client id, made safe for any file system)."""
        return self.directory / (urllib.parse.quote(client_id, safe="@._-") + _SUFFIX)

    def load(self, client_id: str) -> Baseline | None:
        """Return the baseline saved for *client_id*, or None if there is none.

        Raises:
            StateFileCorrupt: The file exists but is not a readable state file.
            StateFileMismatch: The file holds another client id's state.
            StateError: The file cannot be read (permissions, I/O error).
        """
        path = self.path_for(client_id)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read the state file: {exc.strerror or exc}", path=path) from exc
        try:
            document = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateFileCorrupt(f"not valid JSON: {exc}", path=path) from None
        baseline = _from_json(document, path)
        if baseline.client_id != client_id:
            raise StateFileMismatch(
                f"the state file belongs to client id {baseline.client_id!r}, not {client_id!r}", path=path
            )
        return baseline

    def save(self, baseline: Baseline, *, now: datetime, sync: bool = True) -> Baseline:
        """Write *baseline* (with ``saved_at`` = *now*) atomically and durably; return what was written.

        Without *sync* the new file replaces the old one atomically but is not flushed to the disk: it
        survives a crash of the process, not necessarily one of the machine (which leaves the previous file).

        Raises:
            StateError: The directory cannot be created or written (the previous file is left as it was).
        """
        written = attrs.evolve(baseline, saved_at=now)
        path = self.path_for(baseline.client_id)
        data = json.dumps(_to_json(written), indent=2, sort_keys=True).encode("utf-8") + b"\n"
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                if sync:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, path)
            if sync:
                _fsync_directory(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StateError(f"cannot write the state file: {exc.strerror or exc}", path=path) from exc
        self._sweep(path)
        return written

    def lock(self, client_id: str) -> StateLock:
        """Hold *client_id*'s state file for this client alone until :meth:`StateLock.release`.

        Raises:
            StateFileLocked: Another client (in this process or another) holds it.
            StateError: The lock file cannot be created.
        """
        path = self.path_for(client_id).with_suffix(".lock")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot create the lock file: {exc.strerror or exc}", path=path) from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(descriptor, 512, 0).decode("utf-8", "replace").strip() or "an unknown client"
            os.close(descriptor)
            raise StateFileLocked(
                f"client id {client_id!r} is in use by another client ({holder})", path=path, holder=holder
            ) from None
        me = f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(timezone.utc).isoformat()}"
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, me.encode("utf-8"), 0)
        return StateLock(path, descriptor)

    def remove(self, client_id: str) -> bool:
        """Delete the state file of *client_id*; return whether there was one.

        Raises:
            StateError: It exists and cannot be deleted.
        """
        path = self.path_for(client_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"cannot delete the state file: {exc.strerror or exc}", path=path) from exc
        _fsync_directory(self.directory)
        return True

    def _sweep(self, path: Path) -> None:
        # Temporary files of writes that a crash interrupted: never read, removed by the next save.
        for leftover in self.directory.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable (POSIX); not possible (nor needed) on every platform.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
