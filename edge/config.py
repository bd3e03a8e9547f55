"""The `emopi run` configuration: dataclasses per section, loaded from TOML, env and flags.

Precedence, lowest to highest: built-in defaults, the TOML file, ``EMOPI_*`` environment
variables, command-line flags. Every layer is checked against the dataclasses below, so a
typo, a wrong type or an out-of-range value is one clear line naming where it came from::

    config /etc/emopi/emopi.toml: unknown key [detect] evry (did you mean 'every'?)
    environment EMOPI_DETECT_EVERY: [detect] every must be an integer, not 'five'

Environment variables are ``EMOPI_<SECTION>_<KEY>`` (``EMOPI_DETECT_EVERY=3``,
``EMOPI_MQTT_TLS_CA_FILE=...``) or ``EMOPI_<KEY>`` for top-level keys (``EMOPI_DEVICE_ID``).
Values are read as TOML values when they parse (``3``, ``true``, ``1.5``), else as strings.

This module imports neither numpy nor OpenCV, so a workstation without the ``edge`` extra can
validate a Pi's config file.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import socket
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from emopi.edge.bounds import invalid, located, setting, validate_tree
from emopi.edge.errors import ConfigError
from emopi.edge.mqtt.settings import PASSWORD_ENV, MqttSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Where the deploy step installs the config; used when neither --config nor $EMOPI_CONFIG is set.
SYSTEM_CONFIG = Path("/etc/emopi/emopi.toml")
CONFIG_ENV = "EMOPI_CONFIG"
SYSTEM_STATE_DIR = Path("/var/lib/emopi")

#: ``EMOPI_*`` variables that are not config keys (secrets and paths read elsewhere).
RESERVED_ENV = frozenset({CONFIG_ENV, PASSWORD_ENV, "EMOPI_SHARED_DATA"})


@dataclass
class SourceSettings:
    """Where frames come from (``--source``)."""

    spec: str = "auto"  # auto | picamera2 | demo | N | /dev/videoN | FILE | DIR | rtsp://...
    width: int = setting(640, 16, 4096)  # capture size asked of cameras (picamera2 lores, V4L2)
    height: int = setting(480, 16, 4096)
    fps: float = setting(30.0, 0, 240, low_open=True)  # camera rate; pace of demo and folders
    realtime: bool = False  # files/folders: pace at their fps instead of as fast as possible
    loop: bool = False  # files/folders: start again at the end
    # cameras: first wait (s) before reopening a failing camera, doubling up to reconnect_max
    reconnect_min: float = setting(0.5, 0.01, 600, unit="s")
    reconnect_max: float = setting(10.0, 0.01, 600, unit="s")

    def cross_check(self) -> None:
        if not self.spec.strip():
            raise invalid("source.spec", "must not be empty")
        if self.reconnect_max < self.reconnect_min:
            raise invalid(
                "source.reconnect_max",
                f"must be at least reconnect_min ({self.reconnect_min:g} s), "
                f"not {self.reconnect_max:g}",
            )


@dataclass
class DetectSettings:
    """Haar face detection. Sizes are pixels of the downscaled detection frame."""

    width: int = setting(256, 64, 4096)  # frames are downscaled to this width first
    every: int = setting(5, 1, 100)  # detect every N frames; the tracker holds boxes between
    # with faces tracked, only every Nth pass scans the whole frame; the others look just
    # around the tracked faces (much cheaper). 1 = always full scans
    full_every: int = setting(3, 1, 100)
    # scan in a worker thread beside the frame loop, which never waits for a scan and takes
    # the boxes when they are ready; false: scan in the frame loop (the frame waits)
    threaded: bool = True
    # threaded: the frame loop waits for a scan only when its frame is this many frames old
    # (files decoded faster than real time; a camera at 30 fps does not get there)
    max_lag: int = setting(5, 1, 1000)
    scale_factor: float = setting(1.1, 1.01, 2.0)
    min_neighbors: int = setting(5, 0, 50)
    min_size: int = setting(18, 0)  # smallest face, px at `width` (18 of 256 = 7% of it)
    cascade: str = "haarcascade_frontalface_default.xml"
    confirm_cascade: str = ""  # optional second cascade a face must also match, e.g. *_alt2

    def cross_check(self) -> None:
        if self.min_size >= self.width:
            raise invalid(
                "detect.min_size", f"must be below width ({self.width}), not {self.min_size}"
            )
        if not self.cascade:
            raise invalid("detect.cascade", "must not be empty")


@dataclass
class TrackSettings:
    """IoU/centroid tracking between and across detections."""

    iou: float = setting(0.3, 0, 1, low_open=True)  # minimum overlap to continue a track
    max_distance: float = setting(0.6, 0, 5)  # else centroid distance, in box sides
    min_hits: int = setting(2, 1, 100)  # detections before a track is confirmed (`new`)
    timeout: float = setting(1.5, 0, 600, low_open=True, unit="s")  # no detection: it ends


@dataclass
class ClassifySettings:
    """The int8 TFLite emotion model."""

    model: str = ""  # "" = the model shipped in the package
    threads: int = setting(1, 1, 64)  # CPU threads for the interpreter and for OpenCV
    # a tracked face is classified when it is new, when its box moved or changed size by
    # `move` of its side, and at least every N frames; 1 = every face on every frame
    every: int = setting(3, 1, 100)
    move: float = setting(0.1, 0, 10)
    max_faces: int = setting(8, 1, 256)  # faces per frame at most; more wait their turn
    batch: bool = True  # one invoke for all faces of a frame, when the model allows
    require_int8: bool = False  # refuse float models


@dataclass
class SmoothSettings:
    """Per-track smoothing of class probabilities, with hysteresis on the emitted emotion."""

    tau: float = setting(0.3, 0, 60, unit="s")  # EMA time constant (~0.1 weight/frame at 30 fps)
    margin: float = setting(0.15, 0, 1, high_open=True)  # a new emotion must lead by this...
    dwell: float = setting(0.5, 0, 60, unit="s")  # ...for at least this long to be emitted


@dataclass
class MetricsSettings:
    """Prometheus metrics over HTTP."""

    port: int = setting(0, 0, 65535)  # 0 = off; e.g. 9108
    host: str = "127.0.0.1"  # "0.0.0.0" to let a Prometheus server on the LAN scrape it


#: Hosts that only this machine can reach; any other bind address needs [http] token.
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for "" and "0.0.0.0" (every address)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a LAN address


@dataclass
class HttpSettings:
    """The live view in a browser: video with boxes, emotions over time, health (`--http`)."""

    port: int = setting(0, 0, 65535)  # 0 = off; e.g. 8080
    host: str = "127.0.0.1"  # loopback; any other address requires a token
    token: str = ""  # `Authorization: Bearer TOKEN` or ?token=TOKEN; or $EMOPI_HTTP_TOKEN
    video: bool = True  # false: the page without the picture (no frame leaves the process)
    max_fps: float = setting(10.0, 0, 30, low_open=True)  # MJPEG frames per second, at most
    max_width: int = setting(640, 160, 1920)  # MJPEG frames are scaled down to this width
    jpeg_quality: int = setting(70, 10, 95)
    timeline: float = setting(600.0, 60, 3600, unit="s")  # history of faces and emotions kept
    stale_after: float = setting(5.0, 0.5, 600, unit="s")  # /healthz: 503 after no frame so long

    def cross_check(self) -> None:
        if self.port and not self.token and not is_loopback(self.host):
            raise invalid(
                "http.host",
                "must be a loopback address unless [http] token (or $EMOPI_HTTP_TOKEN) is set, "
                f"not {self.host!r}",
            )


@dataclass
class Config:
    device_id: str = ""  # "" = this machine's hostname
    state_dir: str = ""  # "" = /var/lib/emopi when writable, else ~/.local/state/emopi
    source: SourceSettings = field(default_factory=SourceSettings)
    detect: DetectSettings = field(default_factory=DetectSettings)
    track: TrackSettings = field(default_factory=TrackSettings)
    classify: ClassifySettings = field(default_factory=ClassifySettings)
    smooth: SmoothSettings = field(default_factory=SmoothSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)

    def validate(self) -> None:
        """Raise :class:`ConfigError` for the first setting out of bounds or inconsistent."""
        validate_tree(self)

    def cross_check(self) -> None:
        if not all(c.isalnum() or c in "-_." for c in self.device_id):
            raise invalid(
                "device_id",
                f"may only hold letters, digits, '-', '_' and '.', not {self.device_id!r}",
            )

    @property
    def resolved_device_id(self) -> str:
        return self.device_id or default_device_id()

    @property
    def resolved_state_dir(self) -> Path:
        return Path(self.state_dir).expanduser() if self.state_dir else default_state_dir()


def default_device_id() -> str:
    """The short hostname, reduced to characters that are safe in MQTT topics."""
    host = socket.gethostname().split(".")[0] or "emopi"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in host)


def default_state_dir() -> Path:
    """``/var/lib/emopi`` when we may write there (a service), else the user's state dir."""
    system = SYSTEM_STATE_DIR
    target = system if system.exists() else system.parent
    if os.access(target, os.W_OK):
        return system
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "emopi"


def exposed_secrets(cfg: Config, path: Path | None) -> list[str]:
    """Warnings for files with credentials that every user of the machine may read.

    The password itself never lives in the config (only ``password_file`` or
    ``$EMOPI_MQTT_PASSWORD``), so the config is reported only when it names an MQTT user.
    """
    files: list[tuple[str, str]] = []
    if path is not None and cfg.mqtt.username:
        files.append(("config", str(path)))
    if cfg.mqtt.password_file:
        files.append(("[mqtt] password_file", cfg.mqtt.password_file))
    if cfg.mqtt.tls.keyfile:
        files.append(("[mqtt.tls] keyfile", cfg.mqtt.tls.keyfile))
    warnings = []
    for what, name in files:
        try:
            mode = Path(name).stat().st_mode
        except OSError:
            continue  # a missing file is reported where it is read
        if stat.S_ISREG(mode) and mode & stat.S_IROTH:
            warnings.append(
                f"{what} {name} is readable by every user (mode {stat.S_IMODE(mode):04o}); "
                "make it private: chmod o-rwx it"
            )
    return warnings


# --------------------------------------------------------------------------- merging layers


#: Where each setting got its value: dotted key -> origin ("config PATH", "environment VAR",
#: "--flag" or "command line"), so that a later check can name what the user typed.
Origins = dict[str, str]


def _type_name(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        kind, kind.__name__
    )


def _coerce(value: Any, default: Any, key: str, origin: str) -> Any:
    """Check ``value`` against the type of ``default``; ints are accepted for floats."""
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and key.endswith("protocol") and isinstance(value, (int, float)):
        return "5" if value == 5 else str(value)  # `protocol = 5` written without quotes
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise located(origin, key, f"must be {_type_name(kind)}, not {value!r}")


def _unknown(name: str, known: list[str], section: str, origin: str) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    where = f"[{section}] " if section else ""
    return ConfigError(f"{origin}: unknown key {where}{name}{hint}")


def _merge(
    target: Any, data: Mapping[str, Any], origin: str, origins: Origins, section: str = ""
) -> None:
    """Set fields of the dataclass ``target`` from ``data``, checking names and types.

    Every section, ``[mqtt]`` and ``[mqtt.tls]`` included, goes through here.
    """
    known = [f.name for f in fields(target)]
    for name, value in data.items():
        if name not in known:
            raise _unknown(name, known, section, origin)
        current = getattr(target, name)
        key = f"{section}.{name}" if section else name
        if is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            _merge(current, value, origin, origins, key)
        else:
            setattr(target, name, _coerce(value, current, key, origin))
            origins[key] = origin


def _nested(key: str, value: Any) -> dict[str, Any]:
    """``("mqtt.tls.ca_file", v)`` -> ``{"mqtt": {"tls": {"ca_file": v}}}``."""
    *sections, name = key.split(".")
    nested: dict[str, Any] = {name: value}
    for part in reversed(sections):
        nested = {part: nested}
    return nested


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _env_path(cfg: Config, name: str) -> tuple[str, ...] | None:
    """Map ``device_id`` / ``detect_every`` / ``mqtt_tls_ca_file`` onto a key path.

    Returns ``None`` for names that belong to no section (other programs' variables);
    a name inside a known section but naming no key is returned as is, to be reported.
    """
    node: Any = cfg
    path: tuple[str, ...] = ()
    while True:
        names = [f.name for f in fields(node)]
        if name in names:
            return (*path, name)
        sub = next(
            (n for n in names if is_dataclass(getattr(node, n)) and name.startswith(n + "_")),
            None,
        )
        if sub is None:
            return (*path, name) if path else None
        node, path, name = getattr(node, sub), (*path, sub), name[len(sub) + 1 :]


def _env_layer(cfg: Config, env: Mapping[str, str], origins: Origins) -> None:
    for var in sorted(env):
        if not var.startswith("EMOPI_") or var in RESERVED_ENV:
            continue
        path = _env_path(cfg, var[len("EMOPI_") :].lower())
        if path is None:
            continue
        _merge(
            cfg, _nested(".".join(path), _parse_env_value(env[var])), f"environment {var}", origins
        )


def _toml_layer(cfg: Config, path: Path, origins: Origins) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: invalid TOML: {exc}") from None
    _merge(cfg, data, f"config {path}", origins)


def config_path(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The file to load: ``--config``, else ``$EMOPI_CONFIG``, else the system file if any."""
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Config:
    """Defaults, then the TOML file, then ``EMOPI_*`` variables, then ``overrides``.

    ``overrides`` maps dotted keys (``"detect.every"``, ``"mqtt.tls.ca_file"``) to values from
    command-line flags; ``None`` values mean "flag not given" and are skipped. ``flags`` maps
    the same keys to the flag the user typed (``"--detect-every"``), so that an error about
    such a value names the flag rather than the config key.
    """
    cfg = Config()
    origins: Origins = {}
    if path is not None:
        _toml_layer(cfg, Path(path), origins)
    _env_layer(cfg, os.environ if env is None else env, origins)
    for key, value in (overrides or {}).items():
        if value is not None:
            _merge(cfg, _nested(key, value), (flags or {}).get(key, "command line"), origins)
    try:
        cfg.validate()
    except ConfigError as exc:
        origin = origins.get(exc.key)
        if origin is None:  # a default, or a rule over several settings
            raise
        raise located(origin, exc.key, exc.problem) from None
    return cfg
