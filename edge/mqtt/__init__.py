"""MQTT transport: settings, the paho client, the spooling sink, discovery, the embedded broker.

:mod:`.settings` imports nothing beyond the standard library, so the config can be checked
without paho; the other modules import paho.
"""
