"""paho-mqtt clients configured from :class:`~emopi.edge.mqtt.settings.MqttSettings`.

``make_client(settings, client_id)`` applies protocol, credentials and TLS; the two
``describe_*`` functions turn a failed connection into one line that says what to check.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from emopi.edge.errors import EmopiError
from emopi.edge.mqtt.settings import MqttSettings

#: CONNACK reasons that retrying cannot fix: bad user name or password, not authorized,
#: bad authentication method.
AUTH_REFUSED = frozenset({0x86, 0x87, 0x8C})


class Client(mqtt.Client):
    """paho's client, telling ``on_connect_error`` why a connection attempt failed.

    paho's network loop retries a failed connect on its own and keeps the reason to itself;
    an emopi user needs it (refused, wrong port, TLS, DNS) to fix the setup.
    """

    on_connect_error: Callable[[OSError], None] | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            if self.on_connect_error is not None:
                self.on_connect_error(exc)
            raise


def make_client(settings: MqttSettings, client_id: str) -> Client:
    """A paho client with protocol, credentials and TLS from ``settings`` (not connected)."""
    v5 = settings.protocol == "5" and not settings.embedded  # amqtt speaks MQTT 3.1.1 only
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
    )
    paho_log = logging.getLogger("emopi.paho")
    if paho_log.isEnabledFor(logging.DEBUG):  # --debug: paho's packet log (its errors
        client.enable_logger(paho_log)  # repeat ours, so not otherwise)
    if settings.username:
        client.username_pw_set(settings.username, settings.password())
    tls = settings.tls
    if tls.active:
        try:
            client.tls_set(
                ca_certs=tls.ca_file or None,
                certfile=tls.certfile or None,
                keyfile=tls.keyfile or None,
                cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
            )
        except (OSError, ValueError) as exc:
            raise EmopiError(f"[mqtt.tls] cannot load the certificates: {exc}") from None
        if tls.insecure:
            client.tls_insecure_set(True)
    return client


def describe_connect_error(exc: OSError, host: str, port: int, tls: bool = False) -> str:
    """One line for a failed TCP/TLS connection attempt (``tls``: TLS was being set up)."""
    where = f"MQTT broker {host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"{where}: TLS certificate verification failed ({exc.verify_message}); "
            "check [mqtt.tls] ca_file and that host matches the broker certificate"
        )
    if isinstance(exc, ssl.SSLError) or (tls and isinstance(exc, ConnectionResetError)):
        # A plain (non-TLS) listener answers the TLS hello with a reset.
        why = getattr(exc, "reason", None) or exc.strerror or exc
        return f"{where}: TLS handshake failed ({why}); is the port a TLS listener?"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused (is the broker running on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"{where}: cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"{where}: connection timed out"
    return f"{where}: cannot connect ({exc.strerror or exc})"


def describe_refusal(reason: ReasonCode, host: str, port: int) -> str:
    hint = ""
    if reason.value in AUTH_REFUSED:
        hint = "; check [mqtt] username and password_file (or $EMOPI_MQTT_PASSWORD)"
    return f"MQTT broker {host}:{port} refused the connection: {reason}{hint}"


def needs_person(exc: OSError) -> bool:
    """A failed connection attempt that retrying cannot fix: TLS set up wrong (a certificate
    that fails verification, a plain listener on a TLS port). Refused, reset, timed out or
    unresolvable hosts are routine on a LAN or Wi-Fi: they pass on their own."""
    return isinstance(exc, ssl.SSLError)
