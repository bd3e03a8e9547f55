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
import os
import socket
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from emopi.edge.errors import EmopiError
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


class ConfigError(EmopiError):
    """A config value that is invalid; the message names the file, variable or flag."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class SourceSettings:
    """Where frames come from (``--source``)."""

    spec: str = "auto"  # auto | picamera2 | demo | N | /dev/videoN | FILE | DIR | rtsp://...
    width: int = 640  # capture size requested from cameras (picamera2 lores, V4L2)
    height: int = 480
    fps: float = 30.0  # camera frame rate; pacing rate of the demo and of image folders
    realtime: bool = False  # files/folders: pace at their fps instead of as fast as possible
    loop: bool = False  # files/folders: start again at the end
    reconnect_min: float = 0.5  # cameras: first wait (s) before reopening a failing camera...
    reconnect_max: float = 10.0  # ...doubling after each failed attempt up to this

    def validate(self) -> None:
        _require(bool(self.spec.strip()), "[source] spec must not be empty")
        _require(
            0.01 <= self.reconnect_min <= 600,
            f"[source] reconnect_min must be 0.01..600 s, not {self.reconnect_min}",
        )
        _require(
            self.reconnect_min <= self.reconnect_max <= 600,
            f"[source] reconnect_max must be reconnect_min..600 s, not {self.reconnect_max}",
        )
        _require(16 <= self.width <= 4096, f"[source] width must be 16..4096, not {self.width}")
        _require(16 <= self.height <= 4096, f"[source] height must be 16..4096, not {self.height}")
        _require(0 < self.fps <= 240, f"[source] fps must be in (0, 240], not {self.fps}")


@dataclass
class DetectSettings:
    """Haar face detection. Sizes are pixels of the downscaled detection frame."""

    width: int = 320  # frames are downscaled to this width before detection
    every: int = 5  # run the detector every N frames; the tracker holds boxes in between
    full_every: int = 3  # with faces tracked, only every Nth pass scans the whole frame;
    # the others look just around the tracked faces (much cheaper). 1 = always full scans
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 30  # smallest face, px at `width` (30 of 320 = 9% of the frame width)
    cascade: str = "haarcascade_frontalface_default.xml"
    confirm_cascade: str = ""  # optional second cascade a face must also match, e.g. *_alt2

    def validate(self) -> None:
        _require(64 <= self.width <= 4096, f"[detect] width must be 64..4096, not {self.width}")
        _require(1 <= self.every <= 100, f"[detect] every must be 1..100, not {self.every}")
        _require(
            1 <= self.full_every <= 100,
            f"[detect] full_every must be 1..100, not {self.full_every}",
        )
        _require(
            1.01 <= self.scale_factor <= 2.0,
            f"[detect] scale_factor must be 1.01..2.0, not {self.scale_factor}",
        )
        _require(
            0 <= self.min_neighbors <= 50,
            f"[detect] min_neighbors must be 0..50, not {self.min_neighbors}",
        )
        _require(
            0 <= self.min_size < self.width,
            f"[detect] min_size must be 0..width-1, not {self.min_size}",
        )
        _require(bool(self.cascade), "[detect] cascade must not be empty")


@dataclass
class TrackSettings:
    """IoU/centroid tracking between and across detections."""

    iou: float = 0.3  # minimum overlap to continue a track
    max_distance: float = 0.6  # else: centroid distance, as a fraction of the box side
    min_hits: int = 2  # detections before a track is confirmed (and `new` is emitted)
    timeout: float = 1.5  # seconds without a detection before a track ends

    def validate(self) -> None:
        _require(0 < self.iou <= 1, f"[track] iou must be in (0, 1], not {self.iou}")
        _require(
            0 <= self.max_distance <= 5,
            f"[track] max_distance must be 0..5, not {self.max_distance}",
        )
        _require(1 <= self.min_hits <= 100, f"[track] min_hits must be 1..100, not {self.min_hits}")
        _require(
            0 < self.timeout <= 600, f"[track] timeout must be in (0, 600] s, not {self.timeout}"
        )


@dataclass
class ClassifySettings:
    """The int8 TFLite emotion model."""

    model: str = ""  # "" = the model shipped in the package
    threads: int = 1  # CPU threads for the interpreter and for OpenCV
    every: int = 1  # classify tracked faces every N frames
    batch: bool = True  # one invoke for all faces of a frame, when the model allows
    require_int8: bool = False  # refuse float models

    def validate(self) -> None:
        _require(1 <= self.threads <= 64, f"[classify] threads must be 1..64, not {self.threads}")
        _require(1 <= self.every <= 100, f"[classify] every must be 1..100, not {self.every}")


@dataclass
class SmoothSettings:
    """Per-track smoothing of class probabilities, with hysteresis on the emitted emotion."""

    tau: float = 0.3  # EMA time constant, seconds (about 0.1 weight per frame at 30 fps)
    margin: float = 0.15  # a new emotion must lead the current one by this much...
    dwell: float = 0.5  # ...for at least this many seconds before it is emitted

    def validate(self) -> None:
        _require(0 <= self.tau <= 60, f"[smooth] tau must be 0..60 s, not {self.tau}")
        _require(0 <= self.margin < 1, f"[smooth] margin must be in [0, 1), not {self.margin}")
        _require(0 <= self.dwell <= 60, f"[smooth] dwell must be 0..60 s, not {self.dwell}")


@dataclass
class MetricsSettings:
    """Prometheus metrics over HTTP."""

    port: int = 0  # 0 = off; e.g. 9108
    host: str = "127.0.0.1"  # "0.0.0.0" to let a Prometheus server on the LAN scrape it

    def validate(self) -> None:
        _require(0 <= self.port < 65536, f"[metrics] port must be 0..65535, not {self.port}")


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
    mqtt: MqttSettings = field(default_factory=MqttSettings)

    def validate(self) -> None:
        _require(
            all(c.isalnum() or c in "-_." for c in self.device_id),
            f"device_id may only hold letters, digits, '-', '_' and '.', not {self.device_id!r}",
        )
        for section in (self.source, self.detect, self.track, self.classify, self.smooth):
            section.validate()
        self.metrics.validate()
        self.mqtt.validate()

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
    raise ConfigError(f"{origin}: {key} must be {_type_name(kind)}, not {value!r}")


def _label(path: tuple[str, ...]) -> str:
    return f"[{'.'.join(path[:-1])}] {path[-1]}" if len(path) > 1 else path[0]


def _unknown(name: str, known: list[str], section: tuple[str, ...], origin: str) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    where = f"[{'.'.join(section)}] " if section else ""
    return ConfigError(f"{origin}: unknown key {where}{name}{hint}")


def _merge(target: Any, data: Mapping[str, Any], origin: str, section: tuple[str, ...]) -> None:
    """Set fields of the dataclass ``target`` from ``data``, checking names and types."""
    known = {f.name: f for f in fields(target)}
    for name, value in data.items():
        if name not in known:
            raise _unknown(name, list(known), section, origin)
        current = getattr(target, name)
        path = (*section, name)
        if is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: [{'.'.join(path)}] must be a table")
            _merge(current, value, origin, path)
        else:
            setattr(target, name, _coerce(value, current, _label(path), origin))


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


def _env_layer(cfg: Config, env: Mapping[str, str]) -> None:
    for var in sorted(env):
        if not var.startswith("EMOPI_") or var in RESERVED_ENV:
            continue
        path = _env_path(cfg, var[len("EMOPI_") :].lower())
        if path is None:
            continue
        nested: dict[str, Any] = {path[-1]: _parse_env_value(env[var])}
        for part in reversed(path[:-1]):
            nested = {part: nested}
        _merge(cfg, nested, f"environment {var}", ())


def _toml_layer(cfg: Config, path: Path) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: invalid TOML: {exc}") from None
    _merge(cfg, data, f"config {path}", ())


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
) -> Config:
    """Defaults, then the TOML file, then ``EMOPI_*`` variables, then ``overrides``.

    ``overrides`` maps dotted keys (``"detect.every"``, ``"mqtt.tls.ca_file"``) to values from
    command-line flags; ``None`` values mean "flag not given" and are skipped.
    """
    cfg = Config()
    if path is not None:
        _toml_layer(cfg, Path(path))
    _env_layer(cfg, os.environ if env is None else env)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        nested: dict[str, Any] = {dotted.split(".")[-1]: value}
        for part in reversed(dotted.split(".")[:-1]):
            nested = {part: nested}
        _merge(cfg, nested, "command line", ())
    try:
        cfg.validate()
    except ConfigError:
        raise
    except EmopiError as exc:  # MqttSettings.validate raises plain EmopiError
        raise ConfigError(str(exc)) from None
    return cfg
