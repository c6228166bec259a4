"""Live annotation events on `/ws/slides/<id>/`: sent through the channel layer after commit."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def slide_group(slide_id: int) -> str:
    return f"slide-{slide_id}"


def broadcast_on_commit(slide_id: int, event: dict) -> None:
    """Send `event` to everyone viewing the slide once the current transaction commits (never if it rolls back).

    `event["type"]` is the name clients see (`annotation.created`, ...) and names the consumer's handler.
    """
    transaction.on_commit(lambda: _send(slide_id, event))


def _send(slide_id: int, event: dict) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(slide_group(slide_id), event)
    except Exception:  # noqa: BLE001  (the write is committed; a lost live event must not turn it into an error)
        logger.exception("could not broadcast %s for slide %s", event.get("type"), slide_id)
