"""``broker-hub``: run the hub (embedded or one process type), or manage parked messages."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable

from broker_hub.config import ConfigError, Settings, documented_variables
from mirror import cli as mirror_cli

EXIT_OK = 0
EXIT_CONFIG = 2  # a HUB_* variable has a value the hub cannot use
EXIT_UNAVAILABLE = 3  # the database or the broker could not be reached at start
EXIT_FORCED = 4  # a second SIGTERM/SIGINT: stopped without waiting for in-flight work

logger = logging.getLogger("broker_hub")


def _variables_help() -> str:
    rows = [f"  {name:<34} default: {default!r}" for name, _, default in documented_variables()]
    return "environment variables:\n" + "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    from workers.registry import ROLES

    parser = argparse.ArgumentParser(
        prog="broker-hub",
        description="A WebSub hub: Flask front, RabbitMQ (kombu) workers, Prometheus metrics.",
        epilog=_variables_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the web front and every role in one process (embedded default)")
    sub.add_parser("web", help="the web front under Granian (HUB_WEB_WORKERS processes)")
    for name, spec in ROLES.items():
        sub.add_parser(name, help=spec.help)
    parked = sub.add_parser("parked", help="inspect, replay or purge parked notifications")
    parked.add_argument("action", choices=["list", "replay", "purge"])
    parked.add_argument("--limit", type=int, default=1000, help="at most this many messages")
    parked.add_argument("--mirror", help="only messages for this mirror (callback host[:port])")
    parked.add_argument("--topic", help="only messages of this topic URL")
    parked.add_argument("--older-than", type=_age, metavar="AGE",
                        help="only messages parked longer ago than AGE (seconds, or 30m, 2h, 1d)")
    status = sub.add_parser("status", help="the /status summary: mirrors, backlog, parked")
    status.add_argument("--json", action="store_true", help="print /status.json instead")
    sub.add_parser("migrate", help="apply the database schema migrations, then exit")
    mirror_cli.add_parser(sub)  # the agent beside a mirror (mirror/cli.py): needs no hub settings
    return parser


def _age(text: str) -> float:
    from cli.parked import parse_age

    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _on_signals(first: Callable[[], None]) -> None:
    """SIGTERM/SIGINT once: ``first()`` (graceful stop). Twice: exit at once."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if received:
            os._exit(EXIT_FORCED)
        received.append(signum)
        logger.info("signal %d: stopping gracefully (send it again to exit at once)", signum)
        first()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "mirror":
        return mirror_cli.mirror_command(args)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"broker-hub: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    if args.command == "migrate":
        from cli.migrate import migrate_command

        return migrate_command(settings)
    if args.command == "status":
        from cli.status import status_command

        return status_command(settings, args.json)
    if args.command != "run" and settings.broker_url.startswith("memory://"):
        print(
            "broker-hub: HUB_BROKER_URL=memory:// only works with 'broker-hub run' "
            "(one process); set an amqp:// URL",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if args.command == "parked":
        from cli.parked import parked_command

        return parked_command(settings, args.action, args.limit, mirror=args.mirror,
                              topic=args.topic, older_than=args.older_than)
    try:
        if args.command == "run":
            return _run_embedded(settings)
        if args.command == "web":
            return _run_web(settings)
        return _run_worker(settings, args.command)
    except ConfigError as exc:
        print(f"broker-hub: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _run_embedded(settings: Settings) -> int:
    from broker_hub.metrics import Metrics
    from broker_hub.services import Services
    from cli.web_server import EmbeddedWebServer
    from workers.context import WorkerContext
    from workers.registry import build_worker, embedded_processes

    if settings.allow_private_addresses:
        logger.warning(
            "HUB_ALLOW_PRIVATE_ADDRESSES=true: topics and callbacks on loopback and "
            "private networks are allowed (fine for trying the hub on one machine)"
        )
    services = Services.from_settings(settings, metrics=Metrics(process="run"))
    context = WorkerContext(services)
    workers = [build_worker(context, name) for name in embedded_processes(settings)]
    web = EmbeddedWebServer(services)
    threads = [threading.Thread(target=w.run, name=w.name) for w in workers]
    done = threading.Event()

    def stop() -> None:
        for worker in workers:
            worker.stop()
        done.set()

    _on_signals(stop)
    for thread in threads:
        thread.start()
    web.start()
    logger.info(
        "broker-hub (embedded: web, %s) serving the hub at %s",
        ", ".join(w.name for w in workers),
        settings.public_url,
    )
    done.wait()
    web.stop()
    for thread in threads:
        thread.join(30)
    context.close()
    services.close()
    return EXIT_OK


def _run_web(settings: Settings) -> int:
    # Several worker processes: prometheus_client sums their metrics through files in this
    # directory. It must be set before prometheus_client is first imported.
    directory = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="broker-hub-prom-")
    )
    from broker_hub.metrics_multiprocess import reset_multiprocess_dir

    reset_multiprocess_dir(directory)  # files of an earlier run must not count
    from broker_hub.storage import Storage
    from cli.web_server import serve_granian

    try:
        Storage.from_url(settings.database_url).create_schema()
    except Exception as exc:  # noqa: BLE001 - reported as a clear start-up failure
        print(f"broker-hub: database unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    serve_granian(settings)
    return EXIT_OK


def _run_worker(settings: Settings, name: str) -> int:
    from broker_hub.metrics import Metrics
    from broker_hub.services import Services
    from cli.components import serve_metrics
    from workers.context import WorkerContext
    from workers.registry import ROLES, build_worker

    try:
        services = Services.from_settings(settings, metrics=Metrics(process=name))
    except Exception as exc:  # noqa: BLE001 - reported as a clear start-up failure
        print(f"broker-hub: database unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    context = WorkerContext(services)
    worker = build_worker(context, name)
    _on_signals(worker.stop)
    serve_metrics(services, name, ROLES[name].metrics_port)
    worker.run()
    context.close()
    services.close()
    logger.info("%s stopped", name)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
