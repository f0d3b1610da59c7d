"""``broker-hub mirror``: run the agent beside a mirror, or print its status line.

    broker-hub mirror --hub https://hub.example/ --callback-url http://mirror.example:8390/ \\
        --index https://pypi.org --devpi http://127.0.0.1:3141/root/pypi --project requests
    broker-hub mirror status --state mirror-state.sqlite
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import requests

from mirror import hubclient
from mirror.adapters import Adapter
from mirror.adapters.command import CommandAdapter, split_template
from mirror.adapters.devpi import DevpiAdapter
from mirror.adapters.hook import HookAdapter
from mirror.adapters.proxpi import ProxpiAdapter
from mirror.agent import Agent, AgentConfig
from mirror.names import is_valid, normalize

EXIT_OK = 0
EXIT_USAGE = 2

logger = logging.getLogger("mirror")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``mirror`` subcommand's options (hooked into ``cli/main.py``)."""
    p = sub.add_parser("mirror", help="the agent beside a PyPI mirror: push -> mirror sync",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["run", "status"], default="run")
    p.add_argument("--state", default="mirror-state.sqlite", help="the agent's SQLite file")
    p.add_argument("--hub", help="the hub's URL (HUB_PUBLIC_URL of the hub)")
    p.add_argument("--callback-url", help="this agent's public base URL, as the hub reaches it")
    p.add_argument("--bind", default="127.0.0.1:8390", help="host:port of the callback server")
    p.add_argument("--index", default="https://pypi.org",
                   help="the index the mirror copies (serves /pypi/<name>/json)")
    p.add_argument("--project", action="append", default=[],
                   help="subscribe to this project's topic (repeatable; none: the firehose)")
    p.add_argument("--projects-file", help="a file of project names, one a line (# comments)")
    p.add_argument("--allow", action="append", default=[],
                   help="sync only names matching this shell pattern (repeatable)")
    p.add_argument("--deny", action="append", default=[],
                   help="never sync names matching this shell pattern (repeatable, wins)")
    p.add_argument("--devpi", help="devpi mirror index URL, e.g. http://127.0.0.1:3141/root/pypi")
    p.add_argument("--proxpi", help="proxpi base URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--exec", dest="exec_template",
                   help="command template, e.g. 'bandersnatch -c /etc/b.conf sync {projects}'")
    p.add_argument("--hook", help="POST each batch as JSON to this URL")
    p.add_argument("--verify-url", help="for --exec/--hook: the mirror's simple page, "
                   "e.g. http://mirror/simple/{project}/ (checked for the pushed file)")
    p.add_argument("--full-sync", help="command run when the hub cannot catch us up (410)")
    p.add_argument("--coalesce-seconds", type=float, default=1.0,
                   help="gather changed projects this long before syncing (default 1)")
    p.add_argument("--fresh-timeout", type=float, default=60.0,
                   help="wait at most this long for the index to serve a notified serial")
    p.add_argument("--exec-timeout", type=float, default=600.0, help="limit of one --exec run")
    p.add_argument("--max-attempts", type=int, default=8, help="sync attempts per change")
    p.add_argument("--lease-seconds", type=int, default=None, help="lease to ask the hub for")
    p.add_argument("--user-agent", default="broker-hub-mirror (+https://github.com/broker-hub)")
    p.add_argument("--log-level", default="INFO")


def _projects(args: argparse.Namespace) -> list[str]:
    names = list(args.project)
    if args.projects_file:
        with open(args.projects_file, encoding="utf-8") as handle:
            names += [line.split("#", 1)[0].strip() for line in handle]
    names = [n for n in names if n]
    bad = [n for n in names if not is_valid(n)]
    if bad:
        raise ValueError(f"not valid project names: {', '.join(map(repr, bad))}")
    return sorted({normalize(n) for n in names})


def _adapters(args: argparse.Namespace, session: requests.Session) -> list[Adapter]:
    adapters: list[Adapter] = []
    if args.devpi:
        adapters.append(DevpiAdapter(args.devpi, session=session))
    if args.proxpi:
        adapters.append(ProxpiAdapter(args.proxpi, session=session))
    if args.exec_template:
        split_template(args.exec_template)
        adapters.append(CommandAdapter(args.exec_template, timeout=args.exec_timeout,
                                       verify_url=args.verify_url, session=session))
    if args.hook:
        adapters.append(HookAdapter(args.hook, session=session, verify_url=args.verify_url))
    if not adapters:
        raise ValueError("give at least one of --devpi, --proxpi, --exec, --hook")
    return adapters


def config_from(args: argparse.Namespace) -> AgentConfig:
    if not args.hub or not args.callback_url:
        raise ValueError("--hub and --callback-url are needed to run the agent")
    host, _, port = args.bind.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--bind must be host:port (got {args.bind!r})")
    projects = _projects(args)
    topics = ([hubclient.project_topic(args.hub, n) for n in projects] if projects
              else [hubclient.firehose(args.hub)])
    return AgentConfig(
        hub_url=args.hub, callback_url=args.callback_url, topics=topics,
        index_url=args.index.rstrip("/"), state_path=args.state, host=host or "127.0.0.1",
        port=int(port), lease_seconds=args.lease_seconds, coalesce_seconds=args.coalesce_seconds,
        fresh_timeout=args.fresh_timeout, max_attempts=args.max_attempts, allow=args.allow,
        deny=args.deny, full_sync=args.full_sync, user_agent=args.user_agent)


def mirror_command(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT, or print the status line."""
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    if args.action == "status":
        from mirror.state import State
        from mirror.status import status_line

        state = State(args.state)
        print(status_line(state))
        state.close()
        return EXIT_OK
    session = requests.Session()
    try:
        config = config_from(args)
        adapters = _adapters(args, session)
    except (ValueError, OSError) as exc:
        print(f"broker-hub mirror: {exc}", file=sys.stderr)
        return EXIT_USAGE
    agent = Agent(config, adapters, session=session)
    done = threading.Event()

    def stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.start()
    print(f"LISTENING {agent.port}", flush=True)
    done.wait()
    logger.info("stopping")
    agent.stop()
    return EXIT_OK
