"""The ``[mqtt]`` section of the emopi config, as plain dataclasses (no paho import).

It is merged and checked by :mod:`emopi.edge.config` like every other section (bounds beside
each field, see :mod:`emopi.edge.bounds`); `emopi listen` builds one from its flags. ::

    settings.validate()                              # ConfigError naming the first bad key
    settings.enabled / settings.embedded             # host != "" / host == "embedded"
    settings.endpoint()                              # (host, port) to connect to
    settings.prefix(device_id)                       # topic_prefix or emopi/[<site>/]<device_id>
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
from dataclasses import dataclass, field
from pathlib import Path

from emopi.edge.bounds import invalid, setting, validate_tree
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

    def cross_check(self) -> None:
        if self.certfile and not self.keyfile:
            raise invalid("mqtt.tls.certfile", "needs its private key file too (keyfile)")
        if self.keyfile and not self.certfile:
            raise invalid("mqtt.tls.keyfile", "needs its certificate file too (certfile)")
        for name in ("ca_file", "certfile", "keyfile"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise invalid(f"mqtt.tls.{name}", f"{path} does not exist")


@dataclass
class MqttSettings:
    host: str = ""
    port: int = setting(1883, 1, 65535)
    client_id: str = ""  # "" = "emopi-<device_id>", or "emopi-<site>-<device_id>"
    username: str = ""
    password_file: str = ""
    tls: TlsSettings = field(default_factory=TlsSettings)
    keepalive: int = setting(30, 5, unit="seconds")
    protocol: str = setting("5", choices=PROTOCOLS)
    topic_prefix: str = ""  # "" = "emopi/<device_id>", or "emopi/<site>/<device_id>"
    site: str = ""  # a fleet's site (venue, store): one more topic level, part of HA's ids
    qos: int = setting(1, choices=(0, 1, 2))
    state_interval: float = setting(1.0, 0)  # minimum seconds between two retained states
    stats_interval: float = setting(30.0, 0, low_open=True)
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    spool_max_events: int = setting(100_000, 1)  # oldest events are dropped (and counted)
    spool_max_mb: float = setting(64.0, 0.1)  # a size cap for small SD cards too
    embedded_port: int = setting(1883, 1, 65535)
    connect_timeout: float = setting(5.0, 0, 300, unit="seconds")  # wait at start of `run`

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def embedded(self) -> bool:
        return self.host == EMBEDDED

    def endpoint(self) -> tuple[str, int]:
        """Where to connect: the embedded broker listens on 127.0.0.1:embedded_port."""
        return ("127.0.0.1", self.embedded_port) if self.embedded else (self.host, self.port)

    def broker_id(self) -> str:
        """Which broker events are meant for, as recorded in the spool: ``host:port``.

        The embedded broker is ``embedded:port``: a later run's embedded broker is the same
        destination, though it is a new process.
        """
        return f"{self.host}:{self.embedded_port if self.embedded else self.port}"

    def prefix(self, device_id: str) -> str:
        if self.topic_prefix:
            return self.topic_prefix.rstrip("/")
        return f"emopi/{self.site}/{device_id}" if self.site else f"emopi/{device_id}"

    def client_id_for(self, device_id: str) -> str:
        """``client_id``, or one per device and site.

        The broker allows one session per client id: the same device name at two sites must
        not take over the other's session (and fire its Last Will).
        """
        if self.client_id:
            return self.client_id
        return f"emopi-{self.site}-{device_id}" if self.site else f"emopi-{device_id}"

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
        """Raise :class:`~emopi.edge.errors.ConfigError` naming the first bad key."""
        validate_tree(self, "mqtt")

    def cross_check(self) -> None:
        if self.host and not _HOST_RE.fullmatch(self.host):
            raise invalid(
                "mqtt.host",
                f"must be a host name or an IP address, not {self.host!r} "
                "(no scheme, port or path: the port is a setting of its own)",
            )
        for name in ("topic_prefix", "discovery_prefix"):
            if any(c in getattr(self, name) for c in "#+\0"):
                raise invalid(
                    f"mqtt.{name}", f"must not contain '#', '+' or NUL: {getattr(self, name)!r}"
                )
        if not all(c.isalnum() or c in "-_." for c in self.site):
            raise invalid(
                "mqtt.site", f"may only hold letters, digits, '-', '_' and '.', not {self.site!r}"
            )
        if not self.discovery_prefix:
            raise invalid("mqtt.discovery_prefix", "must not be empty")
        if self.password_file and not self.username:
            raise invalid("mqtt.password_file", "is set but username is empty")
        if self.password_file and not Path(self.password_file).is_file():
            raise invalid("mqtt.password_file", f"{self.password_file} does not exist")
