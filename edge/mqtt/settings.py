"""The ``[mqtt]`` section of the emopi config, as plain dataclasses (no paho import).

Public API::

    MqttSettings.from_dict(table) -> MqttSettings   # the TOML table; unknown keys are an error
    settings.validate()                              # raises EmopiError with one clear line
    settings.enabled / settings.embedded             # host != "" / host == "embedded"
    settings.endpoint()                              # (host, port) to connect to
    settings.prefix(device_id)                       # topic_prefix or "emopi/<device_id>"
    settings.password()                              # env EMOPI_MQTT_PASSWORD, else password_file

Example::

    [mqtt]
    host = "broker.lan"          # "" = no broker; "embedded" = in-process broker on localhost
    port = 8883
    username = "emopi"
    password_file = "/etc/emopi/mqtt.pass"
    [mqtt.tls]
    ca_file = "/etc/emopi/ca.pem"

The password itself is never stored in these objects, so ``repr`` and logs cannot leak it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from emopi.edge.errors import EmopiError

PASSWORD_ENV = "EMOPI_MQTT_PASSWORD"
#: A DNS name, an IPv4 address or a bare IPv6 address: what a socket connect takes.
_HOST_RE = re.compile(r"[A-Za-z0-9_.-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?")
EMBEDDED = "embedded"
PROTOCOLS = ("5", "3.1.1")


@dataclass
class TlsSettings:
    """TLS is on when any of ``ca_file``/``certfile`` is set (or ``enabled`` is true)."""

    enabled: bool = False  # use TLS with the system CA store even without a ca_file
    ca_file: str = ""
    certfile: str = ""
    keyfile: str = ""
    insecure: bool = False  # skip hostname/certificate verification: only for tests

    @property
    def active(self) -> bool:
        return self.enabled or bool(self.ca_file or self.certfile)


@dataclass
class MqttSettings:
    host: str = ""
    port: int = 1883
    client_id: str = ""  # "" = "emopi-<device_id>"
    username: str = ""
    password_file: str = ""
    tls: TlsSettings = field(default_factory=TlsSettings)
    keepalive: int = 30
    protocol: str = "5"
    topic_prefix: str = ""  # "" = "emopi/<device_id>"
    qos: int = 1
    state_interval: float = 1.0  # minimum seconds between two retained state messages
    stats_interval: float = 30.0
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    spool_max_events: int = 100_000  # oldest events are dropped (and counted) beyond this
    spool_max_mb: float = 64.0  # also a size cap for small SD cards (a full disk drops oldest too)
    embedded_port: int = 1883
    connect_timeout: float = 5.0  # `emopi run` waits this long for the broker at start

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> MqttSettings:
        """Build from the parsed TOML table; unknown keys and wrong types are a clear error."""
        data = dict(table)
        tls = data.pop("tls", {})
        if not isinstance(tls, dict):
            raise EmopiError("[mqtt] tls must be a table ([mqtt.tls])")
        settings = cls(
            **_checked(cls, data, "mqtt"), tls=TlsSettings(**_checked(TlsSettings, tls, "mqtt.tls"))
        )
        settings.validate()
        return settings

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def embedded(self) -> bool:
        return self.host == EMBEDDED

    def endpoint(self) -> tuple[str, int]:
        """Where to connect: the embedded broker listens on 127.0.0.1:embedded_port."""
        return ("127.0.0.1", self.embedded_port) if self.embedded else (self.host, self.port)

    def prefix(self, device_id: str) -> str:
        return (self.topic_prefix or f"emopi/{device_id}").rstrip("/")

    def password(self) -> str | None:
        """The password from ``$EMOPI_MQTT_PASSWORD`` or the first line of ``password_file``."""
        env = os.environ.get(PASSWORD_ENV)
        if env:
            return env
        if not self.password_file:
            return None
        try:
            return Path(self.password_file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            reason = "it is empty" if isinstance(exc, IndexError) else type(exc).__name__
            raise EmopiError(
                f"[mqtt] password_file {self.password_file} cannot be read ({reason})"
            ) from None

    def validate(self) -> None:
        """Raise :class:`EmopiError` with one line naming the first bad key."""
        if self.host and not _HOST_RE.fullmatch(self.host):
            raise EmopiError(
                f"[mqtt] host must be a host name or an IP address, not {self.host!r} "
                "(no scheme, port or path: the port goes in [mqtt] port)"
            )
        if not 0 < self.port < 65536:
            raise EmopiError(f"[mqtt] port must be 1..65535, not {self.port}")
        if not 0 < self.embedded_port < 65536:
            raise EmopiError(f"[mqtt] embedded_port must be 1..65535, not {self.embedded_port}")
        if self.protocol not in PROTOCOLS:
            raise EmopiError(f'[mqtt] protocol must be "5" or "3.1.1", not {self.protocol!r}')
        if self.qos not in (0, 1, 2):
            raise EmopiError(f"[mqtt] qos must be 0, 1 or 2, not {self.qos}")
        if self.keepalive < 5:
            raise EmopiError(f"[mqtt] keepalive must be >= 5 seconds, not {self.keepalive}")
        if self.state_interval < 0 or self.stats_interval <= 0:
            raise EmopiError("[mqtt] state_interval must be >= 0 and stats_interval > 0")
        if not 0 <= self.connect_timeout <= 300:
            raise EmopiError(
                f"[mqtt] connect_timeout must be 0..300 seconds, not {self.connect_timeout}"
            )
        if self.spool_max_events < 1:
            raise EmopiError(f"[mqtt] spool_max_events must be >= 1, not {self.spool_max_events}")
        if self.spool_max_mb < 0.1:
            raise EmopiError(f"[mqtt] spool_max_mb must be >= 0.1, not {self.spool_max_mb}")
        for name, topic in (
            ("topic_prefix", self.topic_prefix),
            ("discovery_prefix", self.discovery_prefix),
        ):
            if any(c in topic for c in "#+\0"):
                raise EmopiError(f"[mqtt] {name} must not contain '#', '+' or NUL: {topic!r}")
        if not self.discovery_prefix:
            raise EmopiError("[mqtt] discovery_prefix must not be empty")
        if self.password_file and not self.username:
            raise EmopiError("[mqtt] password_file is set but username is empty")
        if bool(self.tls.certfile) != bool(self.tls.keyfile):
            raise EmopiError("[mqtt.tls] certfile and keyfile must be given together")
        for name in ("ca_file", "certfile", "keyfile"):
            path = getattr(self.tls, name)
            if path and not Path(path).is_file():
                raise EmopiError(f"[mqtt.tls] {name} {path} does not exist")
        if self.password_file and not Path(self.password_file).is_file():
            raise EmopiError(f"[mqtt] password_file {self.password_file} does not exist")


def _checked(cls: type, data: dict[str, Any], section: str) -> dict[str, Any]:
    """Reject unknown keys and values of the wrong type, naming the key."""
    known = {f.name for f in fields(cls)}
    defaults = cls()
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise EmopiError(f"[{section}] unknown key {key!r} (known: {', '.join(sorted(known))})")
        want = type(getattr(defaults, key))
        if want is str and key == "protocol" and isinstance(value, (int, float)):
            value = "5" if value == 5 else str(value)  # protocol = 5 written without quotes
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise EmopiError(
                f"[{section}] {key} must be {want.__name__}, not {type(value).__name__} {value!r}"
            )
        out[key] = value
    return out
