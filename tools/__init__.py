"""Workstation tools: building emopi and installing it on a Raspberry Pi (`emopi deploy`).

Not part of the Pi runtime (``emopi.edge``); the CLI finds the command through the
``emopi.commands`` entry point group, as it finds ``emopi.train``.
"""
