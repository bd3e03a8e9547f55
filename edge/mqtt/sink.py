"""MQTT sink that loses no event: spool first, publish, delete after PUBACK, replay in order.

Public API::

    sink = MqttSink(settings, device_id, state_dir, model_id="emopi-fer-int8")
    sink.publish_event(event)     # <prefix>/event, QoS 1, not retained; spooled until PUBACK
    sink.publish_state(state)     # <prefix>/state, retained (the pipeline rate-limits it)
    sink.publish_stats(stats)     # <prefix>/stats: the pipeline's stats + the sink's counters
    sink.connected                # the broker session is up
    sink.wait_connected(timeout)  # EmopiError with the reason when there is no session in time
    sink.refused                  # the broker rejected the credentials (do not keep running)
    sink.counters()               # spool depth/held/dropped, events published/spooled, connected
    sink.close()                  # drain in-flight events, retained `offline`, disconnect

``<prefix>/status`` is a retained ``online`` on every connect; the Last Will is a retained
``offline`` (QoS 1), also published on :meth:`MqttSink.close`.

How nothing is lost: ``publish_event`` commits the event to the SQLite :class:`Spool` and then
hands the oldest not-yet-handed rows to paho, at most ``WINDOW`` in flight. A row is deleted
only when its PUBACK arrives. While the broker is away rows stay in the spool only (bounded,
drop-oldest); after a reconnect paho re-sends what was in flight, and new rows are handed only
after the first PUBACK (or at once when nothing was in flight), so the broker sees each event
in spool order. A restarted process replays the spool from its oldest row before new events.
The spool is opened for this broker (``settings.broker_id()``): rows spooled for another
broker are held, never handed here, and counted as ``spool_held``.
QoS 1 is at-least-once: subscribers drop duplicates by ``(run_id, seq)``.

Thread model: paho's network thread runs the callbacks; the pipeline thread calls the
``publish_*`` methods. Callbacks never block on our lock (paho holds its own locks while it
calls them): they queue a signal and whoever holds the lock processes the queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from emopi.edge.errors import EmopiError
from emopi.edge.events import EmotionEvent, SceneState
from emopi.edge.mqtt.client import (
    AUTH_REFUSED,
    describe_connect_error,
    describe_refusal,
    make_client,
    needs_person,
)
from emopi.edge.mqtt.discovery import Discovery
from emopi.edge.mqtt.outage import OutageLog
from emopi.edge.mqtt.settings import MqttSettings
from emopi.edge.mqtt.spool import SPOOL_FILE, Spool

log = logging.getLogger(__name__)

WINDOW = 100  # events handed to paho and not yet acknowledged
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


class MqttSink:
    """The pipeline's :class:`~emopi.edge.events.Sink` for an MQTT broker."""

    def __init__(
        self,
        settings: MqttSettings,
        device_id: str,
        state_dir: str | Path,
        model_id: str = "",
    ) -> None:
        settings.validate()
        self._settings = settings
        self._host, self._port = settings.endpoint()
        self._model_id = model_id
        prefix = settings.prefix(device_id)
        self.topics = {name: f"{prefix}/{name}" for name in ("status", "event", "state", "stats")}
        # The client first: a certificate error must not leave the spool open (and locked).
        self._client = make_client(settings, settings.client_id_for(device_id))
        self._spool = Spool(
            Path(state_dir) / SPOOL_FILE,
            settings.spool_max_events,
            int(settings.spool_max_mb * 2**20),
            broker=settings.broker_id(),
        )
        self._discovery = (
            Discovery(settings.discovery_prefix, prefix, device_id, model_id, settings.site)
            if settings.discovery
            else None
        )
        # Event delivery state; guarded by _lock, fed by _signals (see module docstring).
        self._lock = threading.Lock()
        self._signals: deque[tuple[Any, ...]] = deque()
        self._inflight: dict[int, int] = {}  # paho mid -> spool row
        self._handed = 0  # highest spool row handed to paho by this process
        self._last_row = 0  # newest spool row appended by this process
        self._may_hand = False
        self._published = 0
        self._spooled = 0
        self._rejected = 0
        # Retained state: the latest one, sent now or at the next connect. Deciding when a
        # state is worth sending (on change, at most every state_interval) is the pipeline's.
        self._state_lock = threading.Lock()
        self._state_json: str | None = None  # latest state, published or pending
        self._state_dirty = False
        self._started = time.monotonic()
        self._is_connected = threading.Event()
        self._error: str | None = None
        self._error_needs_person = False
        self._refused = False
        self._connack_failed = False  # the broker refused; its disconnect is no new failure
        # Connection errors of the first connect_timeout seconds are the caller's to report
        # (wait_connected raises them); after that the outage log has them.
        self._quiet_until = time.monotonic() + settings.connect_timeout
        self._outage = OutageLog(f"MQTT broker {self._host}:{self._port}")
        self._closed = False
        self._spool_open = True

        self._client.will_set(self.topics["status"], "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_connect_error = self._on_connect_error
        self._client.connect_async(self._host, self._port, keepalive=settings.keepalive)
        self._client.loop_start()

    # ----------------------------------------------------------------- public API

    @property
    def connected(self) -> bool:
        return self._is_connected.is_set()

    @property
    def refused(self) -> bool:
        """The broker rejected our credentials: retrying will not help (fail fast on this)."""
        return self._refused

    @property
    def needs_person(self) -> bool:
        """The last connection failure is one retrying cannot fix (credentials, TLS)."""
        return self._error is not None and self._error_needs_person

    def wait_connected(self, timeout: float) -> None:
        """Block until the broker session is up; raise :class:`EmopiError` with the reason.

        A refusal for credentials raises at once: retrying will not fix a wrong password.
        """
        deadline = time.monotonic() + timeout
        silence = f"no answer from MQTT broker {self._host}:{self._port} after {timeout:g}s"
        self._quiet_until = float("inf")  # the caller reports the error: do not log it too
        try:
            while not self._is_connected.wait(0.05):
                if self._refused or time.monotonic() >= deadline:
                    raise EmopiError(self._error or silence)
        finally:
            self._quiet_until = 0.0
            if self._error is not None:
                self._outage.reported_by_caller()

    def publish_event(self, event: EmotionEvent) -> None:
        if self._closed:
            raise RuntimeError("MqttSink.publish_event after close()")
        row = self._spool.append(event.to_json())
        if row:
            self._last_row = row
            self._spooled += 1
            self._signal("kick")

    def publish_state(self, state: SceneState) -> None:
        with self._state_lock:
            self._state_json = json.dumps(state.to_dict(), separators=(",", ":"))
            self._state_dirty = True
        self._flush_state()

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Publish ``stats`` plus the sink's counters; skipped while offline (stats are not
        worth spooling). The pipeline calls this every ``stats_interval``."""
        if not self.connected:
            self._outage.tick(self._spool.depth)
            return
        doc = {
            "model": self._model_id,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "ts": round(time.time(), 3),
            **stats,
            **self.counters(),
        }
        self._client.publish(self.topics["stats"], json.dumps(doc, default=str), qos=0)

    def counters(self) -> dict[str, Any]:
        return {
            "spool_depth": self._spool.depth,
            "spool_dropped": self._spool.dropped,
            "spool_held": self._spool.held,
            "events_spooled": self._spooled,
            "events_published": self._published,
            "events_rejected": self._rejected,
            "broker_connected": self.connected,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` for in-flight events, say ``offline``, disconnect.

        Events not acknowledged by then stay in the spool for the next start.
        """
        if self._closed:
            return
        self._closed = True
        self._flush_state()
        deadline = time.monotonic() + timeout
        while self.connected and self._spool.depth and time.monotonic() < deadline:
            time.sleep(0.02)
            self._signal("kick")
        if self.connected:
            info = self._client.publish(self.topics["status"], "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # the connection dropped meanwhile
                info.wait_for_publish(max(0.5, deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            self._spool.close()
            self._spool_open = False
        if self._spool.depth:
            log.info("%d MQTT event(s) stay spooled for the next start", self._spool.depth)

    # ------------------------------------------------------------ event delivery

    def _signal(self, *item: Any) -> None:
        """Queue a signal and process the queue unless another thread is doing it."""
        self._signals.append(item)
        while self._signals:
            if not self._lock.acquire(blocking=False):
                return  # the holder re-checks the queue after releasing
            try:
                self._process_signals()
            finally:
                self._lock.release()

    def _process_signals(self) -> None:
        acked: list[int] = []
        rejected = 0
        while self._signals:
            kind, *args = self._signals.popleft()
            if kind == "ack":
                mid, reason = args
                row = self._inflight.pop(mid, None)
                if row is None:
                    continue  # status, state, stats or discovery
                self._may_hand = True  # an ack: paho's re-send after a reconnect is under way
                acked.append(row)
                if reason.is_failure:
                    rejected += 1
                    log.warning("MQTT broker rejected event (spool row %d): %s", row, reason)
            elif kind == "connect":
                self._may_hand = not self._inflight
                self._outage.connected(self._spool.depth - self._spool.held, self._last_row)
            elif kind == "disconnect":
                self._may_hand = False
        if not self._spool_open:
            return  # closed: unacknowledged rows stay on disk for the next start
        self._spool.delete(acked)
        # Counted after the delete, so a reader never sees "published" with the row still spooled.
        self._published += len(acked) - rejected
        self._rejected += rejected
        self._outage.acked(acked)
        if self._may_hand:
            self._hand_rows()
        if self._outage.recovery and self._backlog_through(self._outage.recovery.last_row):
            self._outage.backlog_through()

    def _backlog_through(self, last_row: int) -> bool:
        """Every row up to ``last_row`` has been handed to paho and acknowledged (or dropped)."""
        handed = self._handed >= last_row or not self._spool.depth
        return handed and all(row > last_row for row in self._inflight.values())

    def _hand_rows(self) -> None:
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        for row, payload in self._spool.pending(after=self._handed, limit=room):
            info = self._client.publish(
                self.topics["event"], payload, qos=self._settings.qos, retain=False
            )
            queued = info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self._settings.qos > 0
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not queued:
                return  # not taken by paho: the row stays spooled and is handed again later
            self._inflight[info.mid] = row
            self._handed = row

    # ------------------------------------------------------------ paho callbacks

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = reason.value in AUTH_REFUSED
            self._connack_failed = True
            self._set_error(describe_refusal(reason, self._host, self._port), self._refused)
            return
        self._error, self._refused = None, False
        client.publish(self.topics["status"], "online", qos=1, retain=True)
        if self._discovery:
            client.subscribe(self._discovery.status_topic, qos=1)
            self._discovery.publish(client)
        with self._state_lock:
            self._state_dirty = self._state_json is not None
        self._is_connected.set()
        self._flush_state()
        self._signal("connect")

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        was_connected = self._is_connected.is_set()
        self._is_connected.clear()
        self._signal("disconnect")
        if self._closed:
            return
        if was_connected:
            # paho calls a connection that dropped (reset or closed) "Unspecified error"
            dropped = reason.value == 0x80 and not flags.is_disconnect_packet_from_server
            self._outage.lost("the connection dropped" if dropped else str(reason))
        elif self._connack_failed:  # the refusal itself was the failure
            self._connack_failed = False
        else:  # e.g. no CONNACK within keepalive: a stalled link
            self._set_error(f"MQTT broker {self._host}:{self._port}: no session ({reason})")

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        self._signal("ack", mid, reason)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        disc = self._discovery
        if disc and message.topic == disc.status_topic and disc.is_online(message.payload):
            log.info("Home Assistant is online: republishing discovery")
            disc.publish(client)

    # ----------------------------------------------------------------- helpers

    def _flush_state(self) -> None:
        """Publish the latest state if it changed since it was last sent (and we are online)."""
        with self._state_lock:
            if not self._state_dirty or self._state_json is None or not self.connected:
                return
            self._state_dirty = False
            payload = self._state_json
        self._client.publish(self.topics["state"], payload, qos=1, retain=True)

    def _set_error(self, message: str, person: bool = False) -> None:
        """A failed connection attempt: kept for ``wait_connected``, told to the outage log
        (which logs it at the level it deserves) once the caller's start-up window is over."""
        self._error, self._error_needs_person = message, person
        quiet = time.monotonic() < self._quiet_until
        self._outage.failed(message, self._spool.depth, needs_person=person, quiet=quiet)

    def _on_connect_error(self, exc: OSError) -> None:
        tls = self._settings.tls.active
        message = describe_connect_error(exc, self._host, self._port, tls)
        self._set_error(message, needs_person(exc))
