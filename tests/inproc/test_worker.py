"""The worker's policy by error type, on the memory transport (the same tests run on the real
RabbitMQ in tests/integration/test_worker.py)."""

from __future__ import annotations

from broker_hub import topology
from broker_hub.errors import PermanentError, TransientError, Unavailable
from broker_hub.messages import FetchTopic, Parked, VerifyIntent
from broker_hub.services import Services
from tests.inproc.conftest import take
from tests.support.roles import ScriptedRole, running, wait_until
from workers.inbound import Inbound
from workers.policy import POISON_LIMIT

MESSAGE = FetchTopic(topic="http://t.example/feed", seq=1, pinged_at=1.0)


def parked(services: Services) -> list[Parked]:
    return [m for m, _ in take(services, topology.PARKED)]  # type: ignore[misc]


def test_a_handler_bug_is_parked_after_a_bounded_number_of_tries(services: Services) -> None:
    def bug(message: FetchTopic, inbound: Inbound) -> None:
        raise KeyError("boom")

    role = ScriptedRole(bug)
    with running(services, role):
        services.publisher.publish(MESSAGE, topology.FETCH)
        wait_until(lambda: len(role.calls) >= POISON_LIMIT)
        got: list[Parked] = []
        wait_until(lambda: got.extend(parked(services)) or got)
    assert len(role.calls) == POISON_LIMIT  # tried, not redelivered forever
    assert "KeyError" in got[0].reason and got[0].original["topic"] == MESSAGE.topic
    assert services.metrics.handler_errors.labels("scripted")._value.get() == POISON_LIMIT


def test_transient_errors_retry_with_attempts_then_park(services: Services) -> None:
    def flaky(message: FetchTopic, inbound: Inbound) -> None:
        raise TransientError("HTTP 503")

    role = ScriptedRole(flaky, max_attempts=3)
    with running(services, role):
        services.publisher.publish(MESSAGE, topology.FETCH)
        got: list[Parked] = []
        wait_until(lambda: got.extend(parked(services)) or got)
    assert [m.attempt for m in role.calls] == [1, 2, 3]
    assert "HTTP 503" in got[0].reason and got[0].attempts == 3


def test_permanent_error_parks_at_once(services: Services) -> None:
    def refused(message: FetchTopic, inbound: Inbound) -> None:
        raise PermanentError("HTTP 404")

    role = ScriptedRole(refused)
    with running(services, role):
        services.publisher.publish(MESSAGE, topology.FETCH)
        got: list[Parked] = []
        wait_until(lambda: got.extend(parked(services)) or got)
    assert len(role.calls) == 1 and "HTTP 404" in got[0].reason


def test_unavailable_requeues_until_it_works(services: Services) -> None:
    def database_down_twice(message: FetchTopic, inbound: Inbound) -> None:
        if len(role.calls) <= 2:
            raise Unavailable("storage unavailable")
        inbound.ack()

    role = ScriptedRole(database_down_twice)
    with running(services, role):
        services.publisher.publish(MESSAGE, topology.FETCH)
        wait_until(lambda: len(role.calls) >= 3)
    assert parked(services) == []
    assert [m.attempt for m in role.calls] == [1, 1, 1]  # the same message, not a retry


def test_unreadable_and_misrouted_messages_are_parked(services: Services) -> None:
    role = ScriptedRole(lambda message, inbound: inbound.ack())
    with running(services, role):
        intent = VerifyIntent("subscribe", "http://t/", "http://c/", 1.0)
        services.publisher.publish(intent, topology.FETCH)  # the wrong queue
        got: list[Parked] = []
        wait_until(lambda: got.extend(parked(services)) or got)
    assert role.calls == [] and "got a verify message" in got[0].reason


def test_a_change_recorded_twice_is_one_notification(services: Services) -> None:
    """A fetch whose recording failed after its notification was stored (the broker restarted
    mid fan-out) is fetched again: the same change must not become a second notification."""
    from broker_hub.storage import TopicState
    from workers.fetch_record import Fetched, plan_fetch, record_fetches

    topic = "http://t.example/feed"
    services.storage.record_ping(topic, 1.0)
    services.storage.activate(topic, "http://m.example/cb", None, 3600, services.clock())
    state = TopicState(topic, 1, 0, None, None, None, None, None)
    fetched = Fetched(200, b"<feed/>", "text/plain", None, None)
    plan = plan_fetch(FetchTopic(topic, 1, 1.0), 1, 0.0, state, fetched)
    first = services.storage.add_notifications([plan.notification], pinged_at=1.0, now=2.0)
    record_fetches(services, [plan])  # the retry: stored already, fanned out again, recorded
    assert services.storage.notifications_after(topic, 0, 10) == first
    assert len([m for m, _ in take(services, topology.DELIVER)]) == 1


def test_fan_out_covers_every_subscription_once_first_batch_alone(
    services: Services, monkeypatch
) -> None:
    """A big topic's batches: the first published on its own, the rest in confirmed pages;
    together they cover each active subscription exactly once, in id order."""
    from broker_hub.messages import DeliverBatch
    from broker_hub.storage import NewNotification
    from workers import fanout

    topic = "http://t.example/big"
    now = services.clock()
    for n in range(11):
        services.storage.activate(topic, f"http://m{n}.example/cb", None, 3600, now)
    [notification] = services.storage.add_notifications(
        [NewNotification(topic, "text/plain", b"x", key="k", pinged_at=now)],
        pinged_at=now,
        now=now,
    )
    calls: list[int] = []
    publish_many = services.publisher.publish_many
    monkeypatch.setattr(fanout, "PUBLISH_PAGE", 2)

    def counted(items: list) -> None:
        calls.append(len(items))
        publish_many(items)

    monkeypatch.setattr(services.publisher, "publish_many", counted)
    assert fanout.fan_out(services.storage, services.publisher, notification, now, 3) == 4
    assert calls == [2, 1]  # batches 2-3, then 4: the first went alone
    batches = [m for m, _ in take(services, topology.DELIVER)]
    assert all(isinstance(b, DeliverBatch) for b in batches)
    ids = [sub.id for b in batches for sub in services.storage.due_in_range(
        topic, b.first_id, b.last_id, notification.id, now)]
    assert len(ids) == 11 and ids == sorted(set(ids))


def test_the_consume_loop_waits_less_while_a_busy_tick_role_has_work_in_flight(
    services: Services,
) -> None:
    from workers.registry import ROLES
    from workers.worker import Worker

    class Busy(ScriptedRole):
        flying = 0

        def in_flight(self) -> int:
            return self.flying

    role = Busy(lambda message, inbound: None)
    worker = Worker(services.messaging, [role], metrics=services.metrics, tick_interval=0.02,
                    busy_ticks=[(role, 0.001)])
    assert worker._tick_wait() == 0.02
    role.flying = 1
    assert worker._tick_wait() == 0.001
    assert ROLES["fetcher"].busy_tick_interval == 0.001  # the fetcher registers one
