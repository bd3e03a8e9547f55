"""The HTTP view's server (aiohttp) on its own thread and event loop.

Routes::

    /                 the page (static HTML/JS/CSS shipped in the package: no CDN, no build)
    /stream.mjpg      MJPEG: the annotated video, at most [http] max_fps and max_width
    /api/state        JSON: faces, timeline, latest events, health
    /api/events       Server-Sent Events: each event as the exact JSON of the MQTT event topic
    /healthz          200 while frames flow; 503 when the loop is stuck or the camera is down
    /metrics          the Prometheus metrics, when --metrics-port is on as well

With ``[http] token`` set, every route but ``/healthz`` and ``/static/`` needs it, as
``Authorization: Bearer TOKEN`` or ``?token=TOKEN``; a missing or wrong one is a 401 and is
counted (``http_unauthorized`` in ``/api/state``).

Clients never hold up the pipeline: the server reads :class:`LiveView` under its short lock,
encodes JPEG on its own worker thread, and each streaming client only ever takes the newest
frame or event; a client that stops reading is dropped after ``WRITE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import threading
from importlib import resources
from typing import Any

from aiohttp import web

from emopi.edge.config import HttpSettings, is_loopback
from emopi.edge.errors import EmopiError
from emopi.edge.service.http.live import LiveView
from emopi.edge.service.http.pi import PiHealth

log = logging.getLogger("emopi.http")

WRITE_TIMEOUT_S = 10.0  # a client that takes no data for this long is dropped
KEEPALIVE_S = 15.0  # SSE comment line so proxies and browsers keep the stream open
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
OPEN_PATHS = ("/healthz", "/static/")  # no token needed: no data, no picture
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "Referrer-Policy": "no-referrer",  # the token may be in the URL
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
BOUNDARY = "emopi-frame"


class Broadcast:
    """A value that changes, and a future per change: waiters never queue up data."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.changed: asyncio.Future[None] = loop.create_future()

    def fire(self) -> None:
        done, self.changed = self.changed, self._loop.create_future()
        done.set_result(None)

    async def wait(
        self, timeout: float | None = None, since: asyncio.Future[None] | None = None
    ) -> bool:
        """True once the value changed (after ``since``, a ``changed`` taken earlier), False
        after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(asyncio.shield(since or self.changed), timeout)
        except asyncio.TimeoutError:
            return False
        return True


def _token_of(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query.get("token", "")


class HttpServer:
    """Serves a :class:`LiveView`; ``start()`` binds (or raises), ``close()`` stops."""

    def __init__(
        self, live: LiveView, settings: HttpSettings, metrics_registry: Any = None
    ) -> None:
        self.live = live
        self.settings = settings
        self.metrics_registry = metrics_registry  # prometheus_client registry, or None
        self.port = settings.port
        self._pi = PiHealth()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="emopi-jpeg")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: str | None = None
        self._closing = False
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._encoder: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host or "0.0.0.0"
        return f"http://{host}:{self.port}/"

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._serve, name="emopi-http", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            where = f"{self.settings.host}:{self.settings.port}"
            raise EmopiError(f"cannot serve the HTTP view on {where}: {self._error}")
        return self

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._bind())
        except Exception as exc:  # never leave start() waiting: report any failure to bind
            self._error = getattr(exc, "strerror", None) or str(exc)
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        self._frames = Broadcast(loop)
        self._events = Broadcast(loop)

        def wake_sse_clients() -> None:  # called on the pipeline thread
            loop.call_soon_threadsafe(self._events.fire)

        self.live.on_event = wake_sse_clients
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.host or None, self.settings.port).start()
        self.port = self._runner.addresses[0][1]

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        self.live.on_event = None
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._pool.shutdown(wait=True)

    async def _shutdown(self) -> None:
        self._closing = True
        self._frames.fire()  # streaming handlers see _closing and return
        self._events.fire()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ app

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/stream.mjpg", self._stream)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._sse)
        app.router.add_get("/healthz", self._healthz)
        if self.metrics_registry is not None:
            app.router.add_get("/metrics", self._metrics)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = self.settings.token
        if not token and not is_loopback(request.url.host or ""):
            # A web page elsewhere could point its own name at 127.0.0.1 (DNS rebinding) and
            # read the view through the kiosk's browser; real local visitors say localhost.
            return web.json_response(
                {"error": f"Host {request.host!r} is not loopback; set [http] token to serve it"},
                status=403,
            )
        if token and not request.path.startswith(OPEN_PATHS):
            given = _token_of(request)
            if not hmac.compare_digest(given.encode(), token.encode()):
                self.live.unauthorized += 1
                if self.live.unauthorized == 1:
                    log.warning("HTTP view: refused a request without the right token")
                return web.json_response(
                    {
                        "error": "missing or wrong token: send 'Authorization: Bearer TOKEN' "
                        "or ?token=TOKEN"
                    },
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="emopi"'},
                )
        response: web.StreamResponse = await handler(request)
        return response

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=_asset("index.html"), content_type="text/html", headers=SECURITY_HEADERS
        )

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(text=_asset(name), content_type=STATIC[name], headers=SECURITY_HEADERS)

    async def _state(self, _request: web.Request) -> web.Response:
        data = self.live.snapshot()
        loop = asyncio.get_running_loop()
        data["health"].update(await loop.run_in_executor(None, self._pi.read))
        return web.json_response(data, headers={"Cache-Control": "no-store"})

    async def _healthz(self, _request: web.Request) -> web.Response:
        ok, status = self.live.health()
        age = self.live.frame_age()
        body = {"status": status, "frame_age_s": None if age is None else round(age, 3)}
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(self.metrics_registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------------------------ streams

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if not self.settings.video:
            raise web.HTTPNotFound(text="the video is off ([http] video = false)")
        resp = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            }
        )
        await resp.prepare(request)
        self.live.watchers += 1
        if self._encoder is None:
            self._encoder = asyncio.create_task(self._encode_loop())
        try:
            seq = 0
            while not self._closing:
                if self._jpeg[0] == seq or not self._jpeg[1]:
                    if not await self._frames.wait(KEEPALIVE_S) and _left(request):
                        break  # no frame for a while (camera stalled) and the client is gone
                    continue
                seq, jpeg = self._jpeg
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                head += f"Content-Length: {len(jpeg)}\r\n\r\n"
                await asyncio.wait_for(resp.write(head.encode() + jpeg + b"\r\n"), WRITE_TIMEOUT_S)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client left, or stopped reading: drop it
        finally:
            self.live.watchers -= 1
        return resp

    async def _encode_loop(self) -> None:
        """While anyone watches: encode the newest frame, at most ``max_fps`` a second."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.settings.max_fps
        last = -1
        try:
            while self.live.watchers and not self._closing:
                started = loop.time()
                raw = self.live.take_frame(last)
                if raw is not None:
                    last = raw.seq
                    try:
                        jpeg = await loop.run_in_executor(self._pool, self.live.encode, raw)
                    except Exception:  # one bad frame must not end the stream for everyone
                        log.exception("HTTP view: cannot encode frame %d", raw.seq)
                    else:
                        self._jpeg = (self._jpeg[0] + 1, jpeg)
                        self._frames.fire()
                await asyncio.sleep(max(0.0, period - (loop.time() - started)))
        finally:
            self._encoder = None
            self._jpeg = (self._jpeg[0], b"")  # no stale picture kept for the next viewer

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        """Events as SSE; ``?since=0`` (or ``Last-Event-ID``) replays the ones kept."""
        after = _resume_after(
            request.headers.get("Last-Event-ID"), request.query.get("since"), self.live.epoch
        )
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        try:
            if after is None:  # only what happens from now on
                kept = self.live.events_after(0)
                after = kept[-1][0] if kept else 0
            await asyncio.wait_for(resp.write(b": emopi events\n\n"), WRITE_TIMEOUT_S)
            while not self._closing:
                changed = self._events.changed  # taken first: an event during a write counts
                for number, text in self.live.events_after(after):
                    after = number
                    message = f"id: {self.live.epoch}:{number}\ndata: {text}\n\n".encode()
                    await asyncio.wait_for(resp.write(message), WRITE_TIMEOUT_S)
                if not await self._events.wait(KEEPALIVE_S, since=changed):
                    await asyncio.wait_for(resp.write(b": keepalive\n\n"), WRITE_TIMEOUT_S)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        return resp


def _left(request: web.Request) -> bool:
    """True when the client of ``request`` has closed its connection."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _resume_after(last_event_id: str | None, since: str | None, epoch: str) -> int | None:
    """The event number to resume after: ``Last-Event-ID`` (``EPOCH:N``) from a browser that
    reconnects, else ``?since=N``; None means "only new events".

    An id from another epoch (emopi restarted since) resumes from the first kept event.
    """
    if last_event_id:
        id_epoch, _, number = last_event_id.rpartition(":")
        return int(number) if id_epoch == epoch and number.isdigit() else 0
    return int(since) if since and since.isdigit() else None


def _asset(name: str) -> str:
    return (resources.files("emopi.edge.service.http") / "static" / name).read_text("utf-8")
