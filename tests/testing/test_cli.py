"""``nfmp-sim``: serve in one process, scenarios from another, observed with a plain stomp.py subscriber; the
installed console script without a broker, and `serve` while its broker dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nfmp_client import FindFaultsRequest, JmsMissedEvents, SystemInfoEvent
from nfmp_client._version import __version__
from nfmp_client.testing._cli import EXIT_NO_BROKER, main
from nfmp_client.xmlapi import decode_response, encode_request

from ..conftest import BrokerFactory, BrokerInfo, free_ports, process_alive
from .test_simulator import Oss
from .test_snapshot import post

SIM = [sys.executable, "-m", "nfmp_client.testing._cli"]
NFMP_SIM = Path(sys.executable).parent / "nfmp-sim"


def sim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIM, *args], capture_output=True, text=True, timeout=timeout, check=False)


class TestUsage:
    def test_help_lists_every_scenario(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The top-level help names each scenario and the exit codes."""
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])

        out = capsys.readouterr().out
        assert exit_info.value.code == 0
        for command in (
            "serve",
            "restart",
            "switchover",
            "missed-events",
            "overflow",
            "terminate",
            "silence",
        ):
            assert command in out
        assert "Exit codes" in out

    def test_no_server(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A scenario without a running serve exits 3 and says to start one."""
        (port,) = free_ports(1)

        code = main(["missed-events", "oss1@1", "--control", f"http://127.0.0.1:{port}"])

        assert code == 3
        assert "start one first" in capsys.readouterr().err

    def test_usage_error(self) -> None:
        """A missing argument is a usage error (exit 2)."""
        with pytest.raises(SystemExit) as exit_info:
            main(["overflow", "oss1@1"])

        assert exit_info.value.code == 2


class TestConsoleScript:
    def test_version(self) -> None:
        """`nfmp-sim --version` through the installed entry point."""
        result = console("--version")

        assert (result.returncode, result.stdout.strip()) == (0, f"nfmp-sim {__version__}")

    def test_serve_without_a_broker_fails_at_once_with_one_line(self) -> None:
        """Nothing on the broker's port: one clear line, exit 4, in well under a second of work (it printed
        stomp.py's 'could not connect' lines for about 10 s, then exited 1)."""
        port, xmlapi_port, control_port = free_ports(3)

        started = time.monotonic()
        result = console(
            *("serve", "--port", str(port), "--xmlapi-port", str(xmlapi_port)),
            *("--control-port", str(control_port)),
        )
        took = time.monotonic() - started

        assert result.returncode == EXIT_NO_BROKER
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"nfmp-sim: no broker at 127.0.0.1:{port}: Connection refused (is it running? --host and --port "
            "say where it is)"
        ]
        assert took < 5


def console(*args: str) -> subprocess.CompletedProcess[str]:
    assert NFMP_SIM.exists(), f"{NFMP_SIM}: the package is not installed with its console scripts"
    return subprocess.run([str(NFMP_SIM), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def serve(broker: BrokerInfo, tmp_path: Path) -> Iterator[str]:
    """The control URL of a running `nfmp-sim serve`; the file tmp_path/xmlapi holds its XML API URL."""
    xmlapi_port, control_port = free_ports(2)
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            *SIM,
            "serve",
            "--port",
            str(broker.port),
            "--jmx-url",
            broker.jmx_url,
            "--keepalive-interval",
            "0.5",
            "--rate",
            "5",
            "--xmlapi-port",
            str(xmlapi_port),
            "--control-port",
            str(control_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    control = f"http://127.0.0.1:{control_port}"
    deadline = time.monotonic() + 30
    while sim("status", "--control", control).returncode != 0:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, "nfmp-sim serve did not come up"
        time.sleep(0.2)
    (tmp_path / "xmlapi").write_text(f"http://127.0.0.1:{xmlapi_port}/xmlapi/invoke")
    yield control
    process.terminate()
    process.wait(timeout=15)
    log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "simulator: stopped" in output, output


@pytest.mark.integration
class TestServe:
    def test_scenarios_through_the_running_server(self, serve: str, broker: BrokerInfo) -> None:
        """serve welcomes a subscriber; status lists it; missed-events reaches it; restart changes identity."""
        oss = Oss(broker).connect()
        try:
            _, info = oss.next(SystemInfoEvent, strict=False)

            status = sim("status", "--control", serve)
            missed = sim("missed-events", oss.client_id, "--control", serve)
            oss.next(JmsMissedEvents, strict=False)
            restart = sim("restart", "--control", serve)
        finally:
            oss.disconnect()

        assert status.returncode == 0, status.stderr
        assert oss.client_id in [s["client"] for s in json.loads(status.stdout)["subscribers"]]
        assert missed.returncode == 0
        assert f"JmsMissedEvents sent to {oss.client_id}" in missed.stdout
        assert restart.returncode == 0, restart.stderr
        assert "restarted: sysStartTime" in restart.stdout
        assert info.sys_start_time not in restart.stdout

    def test_failed_scenario_exit_code(self, serve: str) -> None:
        """A scenario the server cannot play exits 1 with the reason."""
        result = sim("overflow", "oss1@1", "0", "--control", serve)

        assert result.returncode == 1
        assert "at least one event" in result.stderr

    def test_xmlapi_endpoint_is_served(self, serve: str, tmp_path: Path) -> None:
        """serve answers findFaults on its XML API port with the simulated alarm list."""
        url = (tmp_path / "xmlapi").read_text()

        alarms = decode_response(post(url, encode_request(FindFaultsRequest()))[1])

        assert alarms
        assert {a.object_class for a in alarms} == {"fm.AlarmInfo"}
        assert json.loads(sim("status", "--control", serve).stdout)["objects"] > len(alarms)

    def test_unknown_scenario_is_404(self, serve: str) -> None:
        """The control endpoint refuses names it does not know."""
        request = urllib.request.Request(f"{serve}/scenario/explode", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)  # loopback test URL

        error.value.close()
        assert error.value.code == 404


@pytest.mark.integration
class TestServeWhileTheBrokerDies:
    def test_one_line_per_outage_and_a_prompt_sigterm(
        self, broker_factory: BrokerFactory, tmp_path: Path
    ) -> None:
        """The broker is killed, comes back, is killed again: one line per outage and one when it is back (no
        stomp.py line per attempt, no traceback, no warning per reconnection round), and SIGTERM during an
        outage ends serve within about a second (it took a whole connect timeout, 10 s, and more)."""
        info = broker_factory()
        xmlapi_port, control_port = free_ports(2)
        log_path = tmp_path / "serve.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    str(NFMP_SIM),
                    *("serve", "--port", str(info.port), "--jmx-url", info.jmx_url),
                    *("--keepalive-interval", "0.2", "--rate", "5"),
                    *("--xmlapi-port", str(xmlapi_port), "--control-port", str(control_port)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            logged = _reader(log_path)
            _until(lambda: "control at" in logged(), "serve to come up", process)
            _kill_broker(info)
            _until(lambda: logged().count("lost the broker") == 1, "the outage to be noticed", process)
            info.start()
            _until(lambda: "reconnected to the broker" in logged(), "the reconnection", process)
            _kill_broker(info)
            _until(lambda: logged().count("lost the broker") == 2, "the second outage", process)

            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
            took = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

        output = log_path.read_text()
        assert returncode == 0, output
        assert took < 2.5, output
        assert "simulator: stopped" in output
        assert output.count("lost the broker") == 2, output
        assert output.count("reconnected to the broker") == 1, output
        assert "could not connect" not in output
        assert "Traceback" not in output
        assert "cannot connect" not in output


def _reader(path: Path) -> Callable[[], str]:
    return path.read_text


def _until(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"serve ended while waiting for {what}"
        assert time.monotonic() < deadline, f"waited 60 s for {what}"
        time.sleep(0.05)


def _kill_broker(info: BrokerInfo) -> None:
    pid = info.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process_alive(pid):
        assert time.monotonic() < deadline, "the broker did not die"
        time.sleep(0.05)
