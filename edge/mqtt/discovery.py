"""Home Assistant MQTT discovery for one emopi device.

Public API::

    disc = Discovery(discovery_prefix="homeassistant", prefix="emopi/kiosk", device_id="kiosk")
    disc.configs()                 # {topic: config dict}, retained under
                                   #   <discovery_prefix>/<component>/<node_id>/<object_id>/config
    disc.publish(client)           # publish them all (retained, QoS 1) with a paho client
    disc.status_topic              # "homeassistant/status": the only topic emopi subscribes to
    disc.is_online(payload)        # True only for the exact payload b"online"

Entities: ``sensor`` dominant emotion (an enum, ``none`` without faces), ``sensor`` face count,
and an ``event`` entity that fires with the emotion as event type (``gone`` when a face leaves).
All share one device block and report availability from ``<prefix>/status``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from emopi.edge import __version__
from emopi.edge.contract import LABELS

NO_FACE = "none"  # dominant emotion when nobody is in front of the camera
GONE = "gone"  # event type when a face leaves

# HA renders this against each <prefix>/event message into the JSON its event entity wants.
_EVENT_TEMPLATE = (
    "{{ {'event_type': ('" + GONE + "' if value_json.type == 'end' else value_json.emotion), "
    "'track_id': value_json.track_id, 'confidence': value_json.confidence, "
    "'seq': value_json.seq} | to_json }}"
)


class Publisher(Protocol):
    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> Any: ...


def node_id(device_id: str, site: str = "") -> str:
    """HA allows only ``[a-zA-Z0-9_-]`` in the node id.

    With a site the id is ``emopi_<site>_<device>``: two sites may both have a ``kiosk-1``,
    and one Home Assistant fed by a central broker must see two devices.
    """
    name = f"{site}_{device_id}" if site else device_id
    return "emopi_" + re.sub(r"[^a-zA-Z0-9_-]", "_", name)


class Discovery:
    def __init__(
        self, discovery_prefix: str, prefix: str, device_id: str, model_id: str = "", site: str = ""
    ) -> None:
        self.discovery_prefix = discovery_prefix.rstrip("/")
        self.prefix = prefix
        self.node_id = node_id(device_id, site)
        self.device_id = device_id
        self.site = site
        self.model_id = model_id

    @property
    def status_topic(self) -> str:
        return f"{self.discovery_prefix}/status"

    @staticmethod
    def is_online(payload: bytes | bytearray) -> bool:
        return payload == b"online"

    def _common(self, object_id: str, name: str) -> dict[str, Any]:
        where = f"{self.site}/{self.device_id}" if self.site else self.device_id
        device: dict[str, Any] = {
            "identifiers": [self.node_id],
            "name": f"emopi {where}",
            "manufacturer": "emopi",
            "model": "emopi edge",
            "sw_version": __version__,
        }
        if self.site:
            device["suggested_area"] = self.site
        if self.model_id:
            device["hw_version"] = self.model_id  # the emotion model this device runs
        return {
            "name": name,
            "unique_id": f"{self.node_id}_{object_id}",
            "qos": 1,
            "availability_topic": f"{self.prefix}/status",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            "origin": {"name": "emopi", "sw_version": __version__},
        }

    def configs(self) -> dict[str, dict[str, Any]]:
        state = f"{self.prefix}/state"
        entities = {
            ("sensor", "dominant_emotion"): {
                **self._common("dominant_emotion", "Dominant emotion"),
                "state_topic": state,
                "value_template": "{{ value_json.dominant or '" + NO_FACE + "' }}",
                "device_class": "enum",
                "options": [*LABELS, NO_FACE],
                "icon": "mdi:emoticon-outline",
            },
            ("sensor", "face_count"): {
                **self._common("face_count", "Face count"),
                "state_topic": state,
                "value_template": "{{ value_json.face_count }}",
                "state_class": "measurement",
                "unit_of_measurement": "faces",
                "icon": "mdi:account-group",
            },
            ("event", "emotion"): {
                **self._common("emotion", "Emotion"),
                "state_topic": f"{self.prefix}/event",
                "value_template": _EVENT_TEMPLATE,
                "event_types": [*LABELS, GONE],
                "icon": "mdi:emoticon-excited-outline",
            },
        }
        return {
            f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config": config
            for (component, object_id), config in entities.items()
        }

    def publish(self, client: Publisher) -> None:
        for topic, config in self.configs().items():
            client.publish(topic, json.dumps(config, separators=(",", ":")), qos=1, retain=True)
