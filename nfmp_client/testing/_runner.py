"""ManualRunner: a client's loop stepped by the test itself, in virtual time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, final

from .._engine import Loop
from ._fake_clock import FakeClock

__all__ = ["ManualRunner"]

_STEP_LIMIT: Final = 100_000  # steps without waiting: more means a loop that makes no progress (a bug)


@final
class ManualRunner:
    """A :class:`nfmp_client.engine.Runner` with no thread: the test steps the client on a :class:`FakeClock`.

    Nothing happens unless the test says so: :meth:`run_until_idle` handles what is in the client's inbox,
    :meth:`advance` moves time and fires each deadline at its exact time on the way, :meth:`run_until` jumps
    from deadline to deadline until a condition holds. Side work (the primary check, the application's resync
    retrieval) runs inline. The client's blocking calls (``stop()``, ``run_forever()``) step the loop
    themselves, jumping to the next deadline whenever there is nothing to do, as if time flew.

    Example::

        clock = FakeClock()
        runner = ManualRunner(clock)
        broker = MemoryBroker(clock)
        client = NfmpClient(config, handler, clock=clock, transport=broker, runner=runner)
        client.start()
        runner.run_until_idle()          # connected and subscribed, at the same instant
        runner.advance(config.keepalive_timeout)   # the watchdog expires at its exact deadline
    """

    def __init__(self, clock: FakeClock, *, horizon: float = 3600.0) -> None:
        """Step loops on *clock*; a blocking wait with no end gives up after *horizon* virtual seconds."""
        self.clock = clock
        """The fake clock the client runs on."""
        self.horizon = horizon
        """The most virtual seconds a wait without a timeout (``run_forever()``) may take."""
        self._loop: Loop | None = None
        self._depth = 0

    @property
    def loop(self) -> Loop:
        """The loop being run.

        Raises:
            RuntimeError: Nothing was started yet.
        """
        if self._loop is None:
            raise RuntimeError("no client was started on this runner")
        return self._loop

    def start(self, loop: Loop) -> None:
        """Take *loop*; nothing runs until the test steps it."""
        self._loop = loop

    def in_loop(self) -> bool:
        """Whether the caller is inside a step (a callback of the client's)."""
        return self._depth > 0

    def spawn(self, work: Callable[[], None], name: str) -> None:
        """Run *work* now, inline (deterministic: its posts are in the inbox when this returns)."""
        del name
        work()

    def step(self) -> bool:
        """One step of the loop; return whether it did anything."""
        self._depth += 1
        try:
            return self.loop.step()
        finally:
            self._depth -= 1

    def run_until_idle(self) -> int:
        """Step until there is nothing to do at the current time; return the number of steps that worked.

        Raises:
            RuntimeError: The loop kept working without end (a bug: every step must make progress).
        """
        for count in range(_STEP_LIMIT):
            if not self.step():
                return count
        raise RuntimeError(f"the loop did not settle after {_STEP_LIMIT} steps")

    def advance(self, seconds: float) -> None:
        """Move time forward by *seconds*, firing each deadline on the way at its exact time."""
        target = self.clock.monotonic() + seconds
        while True:
            self.run_until_idle()
            now = self.clock.monotonic()
            due = self.loop.next_deadline()
            if due > target:
                self.clock.advance(max(0.0, target - now))
                self.run_until_idle()
                return
            self.clock.advance(max(0.0, due - now))

    def run_until(self, condition: Callable[[], bool], *, timeout: float = 600.0) -> float:
        """Jump from deadline to deadline until *condition* holds; return the virtual seconds it took.

        Raises:
            TimeoutError: It did not hold within *timeout* virtual seconds.
        """
        started = self.clock.monotonic()
        end = started + timeout
        while True:
            self.run_until_idle()
            if condition():
                return self.clock.monotonic() - started
            due = self.loop.next_deadline()
            if due > end or self.loop.finished:
                raise TimeoutError(f"not reached within {timeout:g} virtual seconds")
            self.clock.advance(max(0.0, due - self.clock.monotonic()))

    def join(self, timeout: float | None) -> bool:
        """Run the loop until it is finished, jumping to each deadline; up to *timeout* virtual seconds.

        Raises:
            RuntimeError: Without a timeout, the loop waits for something only another thread could bring,
                or has not finished within ``horizon`` virtual seconds.
        """
        loop = self.loop
        started = self.clock.monotonic()
        end = started + (self.horizon if timeout is None else timeout)
        while True:
            self.run_until_idle()
            if loop.finished:
                return True
            due = loop.next_deadline()
            if due > end:
                if timeout is None:
                    raise RuntimeError(
                        f"the client did not stop within {self.horizon:g} virtual seconds"
                        if due != float("inf")
                        else "the client waits for something that only another thread could bring"
                    )
                self.clock.advance(max(0.0, end - self.clock.monotonic()))
                self.run_until_idle()
                return loop.finished
            self.clock.advance(max(0.0, due - self.clock.monotonic()))

    def __repr__(self) -> str:
        """Show the clock."""
        return f"<ManualRunner {self.clock!r}>"
