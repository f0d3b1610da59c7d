"""Publishing one poll round of a source index (PyPI's journal) as hub notifications.

A round's entries are kept for catch-up first, then one notification per topic that has
subscribers (the firehose and each changed project's topic) is stored, in one transaction, and
fanned out. Each notification of a journal round carries the key ``<since>-<until>``: a round
read again after a crash finds its notifications stored and fans them out again (the deliverer
skips the subscriptions that had them), so nothing is lost and nothing beyond the in-flight
deliveries is sent twice. A topic nobody subscribes gets no notification at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from broker_hub.pypi.changes import Change
from broker_hub.pypi.notify import Round, by_project, firehose_body, newest_serials, project_bodies
from broker_hub.pypi.topics import firehose_topic, project_topic
from broker_hub.services import Services
from broker_hub.storage import NewNotification
from workers.fanout import fan_out_many

CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Published:
    """What one round published."""

    entries: int
    notifications: int
    batches: int


def publish_round(services: Services, round_: Round) -> Published:
    storage, settings = services.storage, services.settings
    now = services.clock()
    if not round_.degraded:
        storage.store_entries(
            round_.source,
            [(c.serial, c.normalized, json.dumps(c.to_json())) for c in round_.changes if c.serial],
            now,
        )
    public = settings.public_url
    firehose = firehose_topic(public)
    groups = by_project(round_.changes)
    topic_of = {name: project_topic(public, name) for name in groups}
    subscribed = storage.subscribed_topics(
        [firehose, *topic_of.values()], now, up_to=settings.delivery_batch_size + 1
    )
    key = None if round_.degraded else f"{round_.since}-{round_.until}"
    new: list[NewNotification] = []
    if firehose in subscribed:
        new.append(NewNotification(firehose, CONTENT_TYPE, firehose_body(round_, firehose), key))
    wanted = {name for name, topic in topic_of.items() if topic in subscribed}
    if wanted:
        marks = storage.project_marks(round_.source, wanted)
        bodies = project_bodies(
            _only(round_, wanted),
            lambda name: topic_of[name],
            last_until={n: m.notified_until for n, m in marks.items() if m.notified_until},
            previous_serial={n: m.last_serial for n, m in marks.items()},
        )
        new.extend(NewNotification(topic_of[n], CONTENT_TYPE, b, key) for n, b in bodies.items())
    notifications = storage.add_notifications(new, pinged_at=now, now=now)
    batches = fan_out_many(
        storage,
        services.publisher,
        [(n, subscribed[n.topic]) for n in notifications],
        now,
        settings.delivery_batch_size,
    )
    if not round_.degraded:
        storage.save_project_marks(
            round_.source, newest_serials(round_.changes), round_.until, wanted
        )
    return Published(len(round_.changes), len(notifications), batches)


def _only(round_: Round, names: set[str]) -> Round:
    changes: tuple[Change, ...] = tuple(c for c in round_.changes if c.normalized in names)
    return Round(round_.source, round_.since, round_.until, changes, round_.degraded)
