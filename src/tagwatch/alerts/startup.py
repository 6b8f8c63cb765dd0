"""Check the notification channels when the app starts, not when the first alert is raised.

A typo in `TAGWATCH_NOTIFIERS` or a missing key would otherwise surface inside the transaction
that stores a device's records; refusing to start names the setting at once.
"""

from __future__ import annotations

from fastapi import FastAPI

from tagwatch.alerts.notifiers import build_notifier, channels


def install(app: FastAPI) -> None:
    settings = app.state.settings
    for channel in channels(settings):
        if channel != "outbox":  # the outbox needs only the database
            build_notifier(channel, settings)
