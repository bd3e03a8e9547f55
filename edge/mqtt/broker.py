"""An in-process MQTT broker (amqtt) on 127.0.0.1, so a first run needs nothing else installed.

Public API::

    with EmbeddedBroker(port=1883) as broker:   # or broker.start() / broker.stop()
        ...                                     # MQTT 3.1.1 clients connect to 127.0.0.1:port

The broker runs its own asyncio loop in a daemon thread. It only listens on loopback and
allows anonymous clients; for anything beyond a first run, point ``[mqtt] host`` at mosquitto.
amqtt speaks MQTT 3.1.1 only (``make_client`` picks 3.1.1 for ``host = "embedded"``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from emopi.edge.errors import EmopiError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 3.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (for a private broker; racy by nature)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    def __init__(self, port: int = 1883, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Only anonymous auth: no packet/event logger, no $SYS publisher.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

    def start(self) -> EmbeddedBroker:
        from amqtt.broker import Broker  # lazy: only `emopi run` without a broker needs it

        for noisy in ("amqtt", "transitions"):  # a log line per connection and state change
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._check_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="emopi-embedded-broker", daemon=True
        )
        self._thread.start()

        async def boot() -> Any:
            broker = Broker(self._config(), loop=asyncio.get_running_loop())
            await broker.start()
            return broker

        try:
            self._broker = self._run(boot())
        except Exception as exc:
            self._stop_loop()
            reason = exc.__cause__ or exc
            raise EmopiError(
                f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {reason} "
                "(is another broker using the port? set [mqtt] embedded_port or host)"
            ) from None
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)
        return self

    def _check_port(self) -> None:
        """Fail with one line (amqtt would log a traceback) when the port is taken."""
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise EmopiError(
                    f"cannot start the embedded MQTT broker on {self.host}:{self.port}: "
                    f"{exc.strerror} (is another broker running? set [mqtt] embedded_port "
                    "or point [mqtt] host at it)"
                ) from None

    def stop(self) -> None:
        if self._broker is not None:
            try:
                if not self._run(self._shutdown(), SHUTDOWN_TIMEOUT_S + 5):
                    log.debug(
                        "embedded MQTT broker: shutdown hung; listeners closed, tasks cancelled"
                    )
            except Exception as exc:  # stopping must not mask the reason we are stopping
                log.warning("embedded MQTT broker did not shut down cleanly: %r", exc)
            self._broker = None
        self._stop_loop()

    async def _shutdown(self) -> bool:
        """``Broker.shutdown`` bounded in time: amqtt 0.12 sometimes hangs stopping a client.

        On a hang, close the listening sockets and cancel every task of our loop instead.
        """
        task = asyncio.ensure_future(self._broker.shutdown())
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_TIMEOUT_S)
        if task in done:
            task.result()
            return True
        for server in getattr(self._broker, "_servers", {}).values():
            if getattr(server, "instance", None) is not None:
                server.instance.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for other in others:
            other.cancel()
        await asyncio.wait(others, timeout=1)
        return False

    def _run(self, coro: Any, timeout: float = START_TIMEOUT_S) -> Any:
        assert self._loop is not None
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def _stop_loop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop.close()
        self._loop, self._thread = None, None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
