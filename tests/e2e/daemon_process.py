"""`escalate run` as a process, for the tests that watch the daemon at work: started with short
stage intervals, its log read as it comes so that a test waits for what it expects (a log event,
a condition) instead of sleeping a fixed time, and stopped with SIGTERM.

Every wait here is a failure bound, not a speed target: it returns as soon as the condition holds
and is generous enough for a loaded machine (tests run in parallel on two cores)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from .log_lines import parse_logfmt

# the three stages every 0.2 s, so a test never waits for a production interval
FAST_STAGES = {"ESCALATE_POLL_SECONDS": "0.2", "ESCALATE_TICK_SECONDS": "0.2", "ESCALATE_SEND_SECONDS": "0.2"}


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something true and return that; fail naming `what` after `timeout`
    (a bound on failure only: generous, as the suite runs in parallel on a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(interval)


class DaemonProcess:
    """`escalate [OPTIONS] run` with the test's environment and FAST_STAGES (over which `env` wins);
    a thread reads its stderr line by line, so `events()` is what it has logged so far."""

    def __init__(self, env: dict[str, str], *options: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "escalate", *options, "run"],
                                        env={**os.environ, **FAST_STAGES, **env}, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self._lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stderr(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def events(self, name: str) -> list[dict[str, str]]:
        """The logfmt records named `name` logged so far (lines that are not logfmt, such as a
        traceback's, are skipped here: the tests parse the whole log strictly after the stop)."""
        with self._lock:
            lines = list(self._lines)
        found = []
        for line in lines:
            if f"msg={name}" not in line:
                continue
            try:
                record = parse_logfmt(line.rstrip("\n"))
            except AssertionError:
                continue
            if record.get("msg") == name:
                found.append(record)
        return found

    def wait_for_event(self, name: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, str]]:
        """Wait until the daemon has logged `name` at least `count` times; those records."""
        return wait_until(f"{count} × {name} in the log of `escalate run`:\n{self.stderr()[-3000:]}",
                          lambda: (found := self.events(name)) and len(found) >= count and found, timeout)

    def stop(self, timeout: float = 10.0) -> tuple[int, str]:
        """SIGTERM, then the exit status and the whole of stderr; fails when it takes over `timeout`
        (systemd's TimeoutStopSec would kill it)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._end()
            raise AssertionError(f"the daemon did not stop within {timeout:.0f} s of SIGTERM:\n{self.stderr()}") from None
        self._end()
        return self.process.returncode, self.stderr()

    def wait(self, timeout: float = 20.0) -> tuple[int, str]:
        """The exit status and the whole of stderr of a daemon that ends by itself (or was killed)."""
        self.process.wait(timeout=timeout)
        self._end()
        return self.process.returncode, self.stderr()

    def _end(self) -> None:
        """Kill the process if it still runs, read the rest of its stderr and close the pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self._end()  # a test that failed before stopping it leaves no daemon behind
