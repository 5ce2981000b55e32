"""``nfmp-client`` without a real broker: every command in virtual time against the in-memory broker, the
options, the exit codes, and the installed console script (``--version``, ``--help``, an unreachable broker).

``watch`` against a real ActiveMQ broker is in integration/test_cli_watch.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import attrs
import pytest

import nfmp_client._cli as cli
from nfmp_client import (
    BrokerEndpoint,
    ClientConfig,
    TerminateClientSession,
    TlsConfig,
)
from nfmp_client._cli import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TERMINATED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)
from nfmp_client._version import __version__
from nfmp_client.codec import encode_event
from nfmp_client.engine import Clock, Transport, TransportReport
from nfmp_client.state import Baseline, StateStore
from nfmp_client.testing import FakeClock, ManualRunner, MemoryBroker

from .conftest import free_ports
from .strategies import named_alarm

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
A = "a.example:61613"
SCRIPTS = Path(sys.executable).parent
PASSWORD = "pw-Zq8-never-shown"  # noqa: S105  # a test password, to show it is never printed


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def baseline(client_id: str) -> Baseline:
    return Baseline(
        client_id=client_id,
        topic="5620-SAM-topic-xml",
        selector=f"ALA_clientId in ('{client_id}','')",
        durable=True,
        sys_start_time="1795621783680",
        resync_epoch=4,
        in_sync=True,
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    StateStore(tmp_path).save(baseline("oss1@1"), now=NOW)
    return tmp_path


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $XDG_STATE_HOME: the default state directory is tmp_path/xdg/nfmp_client."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NFMP_USERNAME", raising=False)
    monkeypatch.delenv("NFMP_PASSWORD", raising=False)
    return tmp_path / "xdg" / "nfmp_client"


class Output(io.StringIO):
    """Standard output with hooks: *on_line* sees each line as it is written; a closed pipe after *lines*."""

    def __init__(self, *, on_line: Callable[[str], None] | None = None, lines: int | None = None) -> None:
        super().__init__()
        self.on_line = on_line
        self.lines = lines
        self.writes_after_close = 0

    def write(self, text: str) -> int:
        if self.lines is not None and self.getvalue().count("\n") >= self.lines:
            self.writes_after_close += 1
            raise BrokenPipeError(32, "Broken pipe")
        written = super().write(text)
        if self.on_line is not None and text.endswith("\n"):
            self.on_line(self.getvalue().splitlines()[-1])
        return written


class Memory:
    """`nfmp-client` against server A of an in-memory broker, in virtual time; records each config used."""

    def __init__(self) -> None:
        self.clock = FakeClock(start=0.0)
        self.broker = MemoryBroker(self.clock)
        self.server = self.broker.server(A)
        self.configs: list[ClientConfig] = []

    def transport(
        self,
        config: ClientConfig,
        server: BrokerEndpoint,
        *,
        epoch: int,
        sink: Callable[[TransportReport], None],
        clock: Clock,
    ) -> Transport:
        self.configs.append(config)
        return self.broker(config, server, epoch=epoch, sink=sink, clock=clock)

    def run(self, *argv: str, out: io.StringIO | None = None) -> tuple[int, str]:
        out = out or io.StringIO()
        code = main(
            list(argv), out=out, transport=self.transport, clock=self.clock, runner=ManualRunner(self.clock)
        )
        return code, out.getvalue()

    def watch(
        self, *options: str, client_id: str = "look@1", out: io.StringIO | None = None
    ) -> tuple[int, str]:
        return self.run("watch", "--server", A, "--client-id", client_id, *options, out=out)

    def publish_alarm(self, name: str) -> None:
        message = encode_event(named_alarm(name))
        self.server.publish(message.body, message.headers)

    def terminate(self, client_id: str) -> None:
        message = encode_event(TerminateClientSession(client_id=client_id))
        self.server.publish(message.body, message.headers)


@pytest.fixture
def memory(state_home: Path) -> Memory:
    del state_home  # the default state directory is the test's own
    return Memory()


def lines_with(text: str, output: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


# ------------------------------------------------------------------------------------------------ state


def test_state_show(saved: Path) -> None:
    """The baseline, one field a line, under its file's path."""
    code, out = run("state", "show", "--client-id", "oss1@1", "--state-dir", str(saved))

    assert code == EXIT_OK
    assert out.splitlines()[0].endswith("oss1@1.state.json")
    assert "  sys_start_time     1795621783680" in out
    assert "  resync_epoch       4" in out


def test_state_show_json(saved: Path) -> None:
    """--json: one object, times in ISO 8601."""
    code, out = run("state", "show", "--client-id", "oss1@1", "--state-dir", str(saved), "--json")

    assert code == EXIT_OK
    values = json.loads(out)
    assert values["resync_epoch"] == 4
    assert values["saved_at"] == NOW.isoformat()


def test_state_show_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No file: exit 3, said on stderr."""
    code, out = run("state", "show", "--client-id", "oss9@1", "--state-dir", str(tmp_path))

    assert (code, out) == (EXIT_NOTHING, "")
    assert "no state for oss9@1" in capsys.readouterr().err


def test_state_show_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unusable file: exit 1 with the typed error's message."""
    StateStore(tmp_path).path_for("oss1@1").write_text("{")

    code, _ = run("state", "show", "--client-id", "oss1@1", "--state-dir", str(tmp_path))

    assert code == EXIT_FAILED
    assert "not valid JSON" in capsys.readouterr().err


def test_state_reset(saved: Path) -> None:
    """reset deletes the file (the next start resyncs), and says when there was none."""
    code, out = run("state", "reset", "--client-id", "oss1@1", "--state-dir", str(saved))
    assert (code, out.strip().endswith("removed")) == (EXIT_OK, True)
    assert StateStore(saved).load("oss1@1") is None

    code, out = run("state", "reset", "--client-id", "oss1@1", "--state-dir", str(saved))
    assert (code, out.strip().endswith("there was none")) == (EXIT_OK, True)


# ------------------------------------------------------------------------------------------------ usage


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["watch", "--client-id", "oss1@1"],  # no --server
        ["state", "show"],  # no --client-id
        ["nonsense"],
        ["watch", "--server", A, "--client-id", "look@1", "--durable", "--non-durable"],
        ["watch", "--server", A, "--client-id", "look@1", "--seconds", "0"],
        ["watch", "--server", A, "--client-id", "look@1", "--max-attempts", "0"],
        ["unsubscribe", "--client-id", "look@1"],  # no --server
    ],
)
def test_usage_errors(argv: list[str]) -> None:
    """Missing or unknown arguments: exit 2 (argparse's message on stderr)."""
    assert run(*argv)[0] == EXIT_USAGE


def test_invalid_client_id_is_a_usage_error(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A client id without @: exit 2 with the configuration's message, before connecting anywhere."""
    code, _ = run("watch", "--server", "127.0.0.1:1", "--client-id", "oss1")

    assert code == EXIT_USAGE
    assert "name@ID" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version: the program and the package version."""
    assert run("--version")[0] == EXIT_OK
    assert capsys.readouterr().out.strip() == f"nfmp-client {__version__}"


@pytest.mark.parametrize("command", [[], ["watch"], ["unsubscribe"]], ids=["top", "watch", "unsubscribe"])
def test_help_is_plain_text_and_says_what_matters(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--help: no reStructuredText markup; the default port, where the password comes from, TLS."""
    assert run(*command, "--help")[0] == EXIT_OK

    text = capsys.readouterr().out
    assert "``" not in text
    assert ":class:" not in text
    assert "--password-file" in text
    assert "NFMP_PASSWORD" in text
    if command:
        assert "61613 when not given" in " ".join(text.split())
        for option in ("--ca-file", "--cert-file", "--key-file", "--tls"):
            assert option in text
        assert "--connect-timeout" in text


def test_help_and_docstring_list_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """Each exit code is in the help (plain) and in the module docstring's table, with the same number."""
    run("--help")
    help_text = capsys.readouterr().out
    docstring = cli.__doc__ or ""
    codes = sorted(
        value for name, value in vars(cli).items() if name.startswith("EXIT_") and isinstance(value, int)
    )

    assert codes == [0, 1, 2, 3, 4, 5, 6, 130, 141]
    for code in codes:
        assert any(line.startswith(f"  {code} ") for line in help_text.splitlines()), code
        assert any(line.startswith(f"{code} ") for line in docstring.splitlines()), code


# ------------------------------------------------------------------------------------------- durability


def test_watch_is_non_durable_and_leaves_no_subscription(memory: Memory) -> None:
    """By default nothing stays on the broker: the subscription was non-durable (it used to be durable and
    kept collecting events for a watcher that never came back)."""
    code, out = memory.watch("--seconds", "5")

    assert code == EXIT_OK
    assert memory.configs
    assert not memory.configs[0].durable
    assert "(non-durable subscription)" in out
    assert memory.server.subscriptions() == {}
    memory.publish_alarm("after")
    assert memory.server.subscriptions() == {}


def test_watch_through_a_bridge_selects_for_nfmps_client_id(memory: Memory) -> None:
    """--upstream-client-id: the bridge holds NFM-P's client id; the watch selects what is addressed to it."""
    code, _ = memory.watch(
        "--topic", "VirtualTopic.5620-SAM-topic-xml", "--upstream-client-id", "oss1@1", "--seconds", "1"
    )

    assert code == EXIT_OK
    config = memory.configs[0]
    assert (config.topic, config.upstream_client_id) == ("VirtualTopic.5620-SAM-topic-xml", "oss1@1")
    assert "'oss1@1'" in config.selector
    assert config.queue is None


def test_watch_durable_on_request_then_unsubscribe_removes_it(memory: Memory) -> None:
    """--durable leaves a durable subscription that keeps collecting; `unsubscribe` deletes it."""
    code, out = memory.watch("--durable", "--seconds", "5")
    assert (code, "(durable subscription)" in out) == (EXIT_OK, True)
    memory.publish_alarm("while away")
    assert memory.server.subscriptions() == {("look@1", "look@1"): 1}

    code, out = memory.run("unsubscribe", "--server", A, "--client-id", "look@1")

    assert code == EXIT_OK
    assert "durable subscription look@1 of look@1: removed" in out
    assert memory.server.subscriptions() == {}


def test_non_durable_option_is_a_deprecated_no_op(memory: Memory, capsys: pytest.CaptureFixture[str]) -> None:
    """--non-durable is still accepted, says it is the default, and changes nothing."""
    code, _ = memory.watch("--non-durable", "--seconds", "2")

    assert code == EXIT_OK
    assert not memory.configs[0].durable
    assert "--non-durable is the default now and ignored" in capsys.readouterr().err


def test_unsubscribe_names_the_subscription(memory: Memory) -> None:
    """--subscription-name: an application's own name for its durable subscription."""
    memory.watch("--durable", "--seconds", "2")
    code, _ = memory.run(
        "unsubscribe", "--server", A, "--client-id", "look@1", "--subscription-name", "other"
    )

    assert code == EXIT_OK
    assert memory.configs[-1].durable_name == "other"
    assert memory.server.subscriptions() == {("look@1", "look@1"): 0}  # not that one


def test_unsubscribe_unreachable(memory: Memory, capsys: pytest.CaptureFixture[str]) -> None:
    """No server reachable: exit 4, one line with each server's reason."""
    memory.server.refuse()

    code, out = memory.run("unsubscribe", "--server", A, "--client-id", "look@1")

    assert (code, out) == (EXIT_UNREACHABLE, "")
    assert capsys.readouterr().err.splitlines() == [f"nfmp-client: cannot connect: {A}: connection refused"]


def test_unsubscribe_while_the_client_id_is_connected(
    memory: Memory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The broker refuses while the client id is connected: exit 1, saying to stop that client first."""

    def unsubscribe_now(line: str) -> None:
        if "connected to" in line:
            result.append(memory.run("unsubscribe", "--server", A, "--client-id", "look@1"))

    result: list[tuple[int, str]] = []
    memory.watch("--durable", "--seconds", "2", out=Output(on_line=unsubscribe_now))

    assert result[0][0] == EXIT_FAILED
    assert "the client id is connected: stop that client first" in capsys.readouterr().err


# ----------------------------------------------------------------------------- an application's client id


@pytest.mark.parametrize("durable", [False, True], ids=["non-durable", "durable"])
def test_watch_refuses_an_application_client_id(
    memory: Memory, state_home: Path, durable: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client id with a resync baseline in the default state directory is an application's: refused
    (exit 6) before connecting, saying why; with --durable, that it would drain the application's backlog."""
    StateStore(state_home).save(baseline("oss1@1"), now=NOW)

    code, out = memory.watch(*(["--durable"] if durable else []), "--seconds", "2", client_id="oss1@1")

    assert (code, out, memory.configs) == (EXIT_REFUSED, "", [])
    err = " ".join(capsys.readouterr().err.split())
    assert "client id oss1@1 has a resync baseline" in err
    assert "an application uses it" in err
    assert "--force" in err
    if durable:
        assert "acknowledge the events the broker keeps for the application's durable subscription" in err
    else:
        assert "takes the application's place on the broker" in err


def test_watch_refuses_a_client_id_with_a_baseline_in_the_given_state_dir(
    memory: Memory, saved: Path
) -> None:
    """--state-dir: a baseline there counts too."""
    code, _ = memory.watch("--state-dir", str(saved), "--seconds", "2", client_id="oss1@1")

    assert (code, memory.configs) == (EXIT_REFUSED, [])


def test_forced_watch_leaves_the_application_baseline_alone(memory: Memory, state_home: Path) -> None:
    """--force watches all the same, in a temporary state directory: the application's baseline is
    untouched (it used to be rewritten as in sync, so the application skipped a resync it needed)."""
    StateStore(state_home).save(attrs.evolve(baseline("oss1@1"), in_sync=False), now=NOW)
    before = StateStore(state_home).path_for("oss1@1").read_bytes()

    code, _ = memory.watch("--force", "--seconds", "5", client_id="oss1@1")

    assert code == EXIT_OK
    assert StateStore(state_home).path_for("oss1@1").read_bytes() == before
    assert memory.configs[0].state_dir != state_home


def test_watch_keeps_its_baseline_in_a_temporary_directory(memory: Memory, state_home: Path) -> None:
    """Nothing is written to the default state directory; the temporary one is gone afterwards."""
    code, _ = memory.watch("--seconds", "5")

    assert code == EXIT_OK
    assert not StateStore(state_home).path_for("look@1").exists()
    used = memory.configs[0].state_dir
    assert used is not None
    assert not used.exists()


def test_watch_keeps_its_baseline_where_told(memory: Memory, tmp_path: Path) -> None:
    """--state-dir: the baseline stays there."""
    code, _ = memory.watch("--state-dir", str(tmp_path / "mine"), "--seconds", "5")

    assert code == EXIT_OK
    assert StateStore(tmp_path / "mine").load("look@1") is not None


def test_unsubscribe_refuses_an_application_client_id(
    memory: Memory, state_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Removing an application's subscription deletes its backlog: refused unless --force."""
    StateStore(state_home).save(baseline("oss1@1"), now=NOW)

    code, _ = memory.run("unsubscribe", "--server", A, "--client-id", "oss1@1")
    assert (code, memory.configs) == (EXIT_REFUSED, [])
    assert "deletes the events the broker keeps for the application" in " ".join(
        capsys.readouterr().err.split()
    )

    code, _ = memory.run("unsubscribe", "--server", A, "--client-id", "oss1@1", "--force")
    assert code == EXIT_OK


# ------------------------------------------------------------------------------------------- endings


def test_never_connected_says_so_once_and_is_not_success(
    memory: Memory, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreachable server: one 'cannot connect' line for all the attempts, then one closing line and
    exit 4 when --seconds ends (it used to print a 'connection lost' line per attempt and exit 0)."""
    memory.server.refuse()

    code, out = memory.watch("--seconds", "60")

    assert code == EXIT_UNREACHABLE
    assert len(memory.configs) >= 4  # several attempts
    assert len(out.splitlines()) == 1
    assert f"cannot connect to {A}: connection refused (retrying; Ctrl-C stops)" in out
    assert "lost" not in out
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"nfmp-client: the watch ended without ever connecting ({len(memory.configs)} failed attempt(s); "
        f"the last: {A}: connection refused)"
    ]


def test_verbose_prints_every_attempt(memory: Memory) -> None:
    """--verbose: a line per failed attempt."""
    memory.server.refuse()

    code, out = memory.watch("--seconds", "60", "--verbose")

    assert code == EXIT_UNREACHABLE
    assert len(lines_with("cannot connect", out)) == len(memory.configs) >= 4


def test_json_failed_attempts_are_their_own_kind(memory: Memory) -> None:
    """--json: a failed attempt is a connect-failed object (once per reason), not a connection-lost one."""
    memory.server.refuse()

    _, out = memory.watch("--seconds", "60", "--json")

    records = [json.loads(line) for line in out.splitlines()]
    assert [r["kind"] for r in records] == ["connect-failed"]
    assert records[0]["retrying"] is True
    assert records[0]["detail"] == "connection refused"


def test_a_lost_connection_then_failed_reconnects(memory: Memory) -> None:
    """Connected, then lost: one 'lost' line, one 'cannot reconnect' line for all the failed retries; the
    watch had connected, so --seconds ending is exit 0."""

    def drop_once_connected(line: str) -> None:
        if "connected to" in line and not dropped:
            dropped.append(True)
            memory.server.refuse()
            memory.server.drop()

    dropped: list[bool] = []
    code, out = memory.watch("--seconds", "60", out=Output(on_line=drop_once_connected))

    assert code == EXIT_OK
    assert len(lines_with(f"connection to {A} lost: the connection was closed; reconnecting", out)) == 1
    assert len(lines_with(f"cannot reconnect to {A}: connection refused", out)) == 1
    assert len(memory.configs) >= 4


def test_max_attempts_gives_up(memory: Memory, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-attempts: gives up with exit 4 and says why, once."""
    memory.server.refuse()

    code, _ = memory.watch("--max-attempts", "2", "--connect-timeout", "3")

    assert code == EXIT_UNREACHABLE
    assert memory.configs[0].retry.max_attempts == 2
    assert memory.configs[0].retry.connect_timeout == 3.0
    assert len(memory.configs) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"nfmp-client: gave up: cannot connect to {A}: connection refused"
    ]


def test_session_terminated_has_its_own_exit_code_and_one_message(
    memory: Memory, capsys: pytest.CaptureFixture[str]
) -> None:
    """TerminateClientSession: exit 5, said once (it was printed twice, and exited like any error)."""

    def terminate_once_connected(line: str) -> None:
        if "connected to" in line:
            memory.terminate("look@1")

    code, out = memory.watch(out=Output(on_line=terminate_once_connected))

    assert code == EXIT_TERMINATED
    assert "terminate" not in out.lower()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "the server terminated the session of look@1" in err[0]


def test_session_terminated_in_json(memory: Memory) -> None:
    """--json still records the notice and the loss, for a machine reading the stream."""

    def terminate_once_connected(line: str) -> None:
        if "connection-restored" in line:
            memory.terminate("look@1")

    code, out = memory.watch("--json", out=Output(on_line=terminate_once_connected))

    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert code == EXIT_TERMINATED
    assert kinds[-3:] == ["terminated", "system", "connection-lost"]


def test_closed_output_stops_quietly(
    memory: Memory, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reader went away (`| head`): nothing more is written, no handler error, the client stops and the
    exit code is 141 (it used to log a traceback per line and count the failed print as a handler error)."""
    output = Output(lines=1)

    def alarms() -> None:
        for n in range(5):
            memory.publish_alarm(f"a{n}")

    output.on_line = lambda line: alarms() if "connected to" in line else None
    code, _ = memory.watch("--seconds", "60", out=output)

    assert code == EXIT_BROKEN_PIPE
    assert output.writes_after_close == 1
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------- login, TLS, servers


def test_password_from_a_file_never_shown(
    memory: Memory, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """--password-file: its first line is the password; a refused login says so (exit 4) without it."""
    secret = tmp_path / "password"
    secret.write_text(f"{PASSWORD}\nthe rest is ignored\n")
    memory.server.reject_logins("User name [oss] or password is invalid.")

    code, out = memory.watch(
        "--username", "oss", "--password-file", str(secret), "--seconds", "5", "--verbose"
    )

    assert code == EXIT_UNREACHABLE
    assert memory.configs[0].password == PASSWORD
    err = capsys.readouterr().err
    assert "refused the login" in err
    assert PASSWORD not in out + err + caplog.text + repr(memory.configs[0])


def test_password_from_the_environment(memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --password-file: $NFMP_PASSWORD; $NFMP_USERNAME is the default login."""
    monkeypatch.setenv("NFMP_USERNAME", "oss")
    monkeypatch.setenv("NFMP_PASSWORD", PASSWORD)

    code, _ = memory.watch("--seconds", "1")

    assert code == EXIT_OK
    assert (memory.configs[0].username, memory.configs[0].password) == ("oss", PASSWORD)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--username", "oss"], "needs its password: in a file (--password-file) or in $NFMP_PASSWORD"),
        (["--password-file", "/nonexistent"], "--password-file needs --username"),
        (["--username", "oss", "--password-file", "/nonexistent/pw"], "cannot read the password file"),
        (["--ca-file", "/nonexistent/ca.pem"], "--ca-file /nonexistent/ca.pem: no such file"),
    ],
)
def test_login_and_tls_usage_errors(
    memory: Memory, options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password or a TLS file that cannot be had: exit 2, saying which, before connecting."""
    code, _ = memory.watch(*options, "--seconds", "1")

    assert (code, memory.configs) == (EXIT_USAGE, [])
    assert message in capsys.readouterr().err


def test_tls_options(memory: Memory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--tls (the system's trust store), --ca-file, --cert-file, --key-file reach the configuration."""
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("test")

    memory.watch("--tls", "--seconds", "1")
    memory.watch(
        *("--ca-file", str(files["ca"]), "--cert-file", str(files["cert"]), "--key-file", str(files["key"])),
        "--seconds",
        "1",
    )
    code, _ = memory.watch("--key-file", str(files["key"]), "--seconds", "1")

    assert [c.tls for c in memory.configs[:2]] == [
        TlsConfig(),
        TlsConfig(ca_file=files["ca"], cert_file=files["cert"], key_file=files["key"]),
    ]
    assert code == EXIT_USAGE  # a key without its certificate
    assert "cert_file" in capsys.readouterr().err


def test_server_without_port_means_61613(memory: Memory) -> None:
    """--server HOST is HOST:61613, and the output says so."""
    memory.broker.server("a.example:61613")

    code, out = memory.run("watch", "--server", "a.example", "--client-id", "look@1", "--seconds", "1")

    assert code == EXIT_OK
    assert memory.configs[0].servers == (BrokerEndpoint(host="a.example", port=61613),)
    assert "connected to a.example:61613" in out


def test_stomp_py_lines_are_not_shown_without_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    """stomp.py's own warning for a socket it could not open is the transport's to read, not the user's
    (the command says the reason once itself)."""
    with cli._logging(False):
        logging.getLogger("stomp.py").warning(
            "could not connect to host %s, port %s: %s", "h.example", 1, ConnectionRefusedError(111, "x")
        )

    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------- the installed console script


def script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = SCRIPTS / name
    assert path.exists(), f"{path}: the package is not installed with its console scripts"
    return subprocess.run(
        [str(path), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_console_script_version_and_help() -> None:
    """`nfmp-client --version` and `--help` through the installed entry point."""
    version = script("nfmp-client", "--version")
    helped = script("nfmp-client", "watch", "--help")

    assert (version.returncode, version.stdout.strip()) == (0, f"nfmp-client {__version__}")
    assert helped.returncode == 0
    assert "--password-file" in helped.stdout
    assert "``" not in helped.stdout


@pytest.mark.slow
def test_console_script_unreachable_broker(tmp_path: Path) -> None:
    """`nfmp-client watch` on a port where nothing listens: the socket's reason once, exit 4, no traceback."""
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFMP_")}
    env["XDG_STATE_HOME"] = str(tmp_path)

    result = script(
        "nfmp-client",
        *("watch", "--server", f"127.0.0.1:{port}", "--client-id", "look@1", "--seconds", "2"),
        env=env,
    )

    assert result.returncode == EXIT_UNREACHABLE, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in result.stdout
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "without ever connecting" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written to the default state directory
