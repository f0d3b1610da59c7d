"""How long the feed diff takes on a feed of identical entries (issue 15, quadratic keys).

    python -m bench.isolation_diff [N ...]     (default: 1000 4000 16000)

Prints the CPU seconds of one :func:`broker_hub.feeds.diff_feed` per entry count, with the
entry limit lifted (the cost of the diff itself), then the cost of refusing the largest count
at the default HUB_FEED_MAX_ENTRIES.
"""

from __future__ import annotations

import sys
import time

from broker_hub.feeds import DEFAULT_MAX_ENTRIES, TooManyEntries, diff_feed


def duplicate_feed(n: int) -> bytes:
    """An Atom feed of ``n`` empty, identical entries (8 bytes each)."""
    return b'<feed xmlns="http://www.w3.org/2005/Atom">' + b"<entry/>" * n + b"</feed>"


def main(argv: list[str]) -> None:
    counts = [int(a) for a in argv] or [1000, 4000, 16000]
    for n in counts:
        body = duplicate_feed(n)
        start = time.process_time()
        diff = diff_feed(body, "application/atom+xml", None, max_entries=0)
        took = time.process_time() - start
        kept = len(diff.entries) if diff else 0
        print(f"{n:>7} duplicate entries ({len(body) // 1024} KiB): {took:8.3f} s CPU, "
              f"{kept} entries kept")
    body = duplicate_feed(max(counts))
    start = time.process_time()
    try:
        diff_feed(body, "application/atom+xml", None)
    except TooManyEntries as exc:
        took = time.process_time() - start
        print(f"{max(counts):>7} at HUB_FEED_MAX_ENTRIES={DEFAULT_MAX_ENTRIES}: refused "
              f"after {took:.3f} s CPU ({exc})")


if __name__ == "__main__":
    main(sys.argv[1:])
