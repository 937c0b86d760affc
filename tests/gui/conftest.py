"""Fixtures shared by the GUI tests."""

from __future__ import annotations

import pytest
from napari.utils.notifications import notification_manager


@pytest.fixture
def messages():
    """Texts of the napari notifications shown during the test."""
    seen: list[str] = []

    def record(notification):
        seen.append(str(notification.message))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
