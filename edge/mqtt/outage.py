"""What a broker outage puts in the log: as much as the operator has to do about it.

A kiosk on flaky Wi-Fi, or next to a broker that restarts, loses its connection routinely;
events wait in the spool and nobody has to act. So, per outage:

* the first failure is one WARNING (``lost MQTT broker ...``, or the reason of the first
  failed attempt), and the retries after it are DEBUG;
* while it lasts, one WARNING summary every :data:`SUMMARY_EVERY_S` seconds
  (``MQTT broker h:p unreachable for 5 min (...); 130 event(s) spooled``);
* when it ends, one INFO line with how long it lasted and how many spooled events were sent,
  logged once the events spooled before the reconnect have been acknowledged.

ERROR is kept for what needs a person: a failure marked ``needs_person`` (refused
credentials, a TLS certificate that fails verification) is an ERROR each time its message
changes, and the summaries of such an outage are ERRORs too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("emopi.edge.mqtt.sink")  # the sink's lines, under the sink's name

SUMMARY_EVERY_S = 300.0


def human_duration(seconds: float) -> str:
    """``47 s``, ``5 min``, ``5 min 12 s``, ``2 h 05 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


@dataclass
class Recovery:
    """The backlog of one ended outage: spool rows up to ``last_row`` were waiting."""

    outage_s: float
    waiting: int
    last_row: int
    sent: int = 0


@dataclass
class OutageLog:
    """The log of one broker connection's outages (see the module docstring).

    Not thread-safe on its own: the sink calls it from paho's thread and, for :meth:`tick`,
    from the pipeline's; the worst a race costs is one summary line too many or too few.
    """

    where: str  # "MQTT broker host:port"
    summary_every: float = SUMMARY_EVERY_S
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    recovery: Recovery | None = None
    _ever_connected: bool = False
    _reported: bool = False  # the outage's first line is out (ours or the caller's)
    _reason: str = ""
    _needs_person: bool = False
    _last_error: str = ""
    _next_summary: float = field(default=float("inf"))

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def lost(self, reason: str) -> None:
        """The session dropped: one WARNING, the outage starts."""
        self._end_recovery()
        self._start()
        self._reported = True
        self._reason = reason
        log.warning("lost %s (%s); events are spooled until it is back", self.where, reason)

    def failed(
        self, message: str, spooled: int, needs_person: bool = False, quiet: bool = False
    ) -> None:
        """A connection attempt failed with ``message`` (a line from ``client.describe_*``).

        ``quiet``: the caller reports this failure itself (``wait_connected`` at start-up).
        """
        if not self.down:
            self._end_recovery()
            self._start()
        self._reason, self._needs_person = message, needs_person
        if quiet:
            log.debug("%s", message)
        elif needs_person and message != self._last_error:
            self._last_error = message
            self._reported = True
            log.error("%s", message)
        elif not self._reported:
            self._reported = True
            log.warning("%s; events are spooled until it is back", message)
        else:
            log.debug("%s (still down; retrying)", message)
        self.tick(spooled)

    def reported_by_caller(self) -> None:
        """The caller logged the outage's first failure (``wait_connected`` raised it)."""
        self._reported = True
        if self._needs_person:
            self._last_error = self._reason

    def tick(self, spooled: int) -> None:
        """A summary line when one is due; called on every failure and periodically."""
        now, down_since = self.clock(), self.down_since  # read once: paho's thread may reset it
        if down_since is None or now < self._next_summary:
            return
        self._next_summary = now + self.summary_every
        log.log(
            logging.ERROR if self._needs_person else logging.WARNING,
            "%s unreachable for %s (%s); %s spooled",
            self.where,
            human_duration(now - down_since),
            self._reason,
            plural(spooled, "event"),
        )

    def connected(self, waiting: int, last_row: int) -> None:
        """The session is up; ``waiting`` spooled events (rows up to ``last_row``) are due."""
        down_since = self.down_since
        if down_since is None:
            if not self._ever_connected:
                log.info("connected to %s", self.where)
        elif not self._ever_connected:
            log.info(
                "connected to %s after %s; %s waiting in the spool",
                self.where,
                human_duration(self.clock() - down_since),
                plural(waiting, "event"),
            )
        else:
            self.recovery = Recovery(self.clock() - down_since, waiting, last_row)
            if not waiting:
                self._end_recovery()
        self._ever_connected = True
        self.down_since = None
        self._reported = self._needs_person = False
        self._last_error = self._reason = ""
        self._next_summary = float("inf")

    def acked(self, rows: list[int]) -> None:
        """Spool rows acknowledged by the broker: those of the backlog count as sent."""
        if self.recovery is not None:
            self.recovery.sent += sum(1 for row in rows if row <= self.recovery.last_row)

    def backlog_through(self) -> None:
        """No row of the backlog is left to send: the outage's INFO line."""
        self._end_recovery()

    def _start(self) -> None:
        now = self.clock()
        self.down_since = now
        self._reported = False
        self._next_summary = now + self.summary_every

    def _end_recovery(self) -> None:
        """Log the last outage's INFO line if it is still due (``sent`` short of ``waiting``:
        the connection dropped again first, or rows were dropped from a full spool)."""
        rec, self.recovery = self.recovery, None
        if rec is None:
            return
        if rec.sent >= rec.waiting:
            tail = f"{plural(rec.sent, 'spooled event')} sent"
        else:
            tail = f"{rec.sent} of {plural(rec.waiting, 'spooled event')} sent"
        log.info(
            "%s back after an outage of %s; %s", self.where, human_duration(rec.outage_s), tail
        )
