"""The PyPI bridge benchmark's arithmetic (bench/bridge_report.py): which delivery reaches
which change, and what counts as lost or duplicated."""

from bench.bridge_report import coverage, poller_rounds, published


def test_a_change_is_reached_by_the_first_delivery_spanning_its_serial() -> None:
    log = [
        ["/cb/x/0", 10.5, 1, 5, "1.1"],  # holds serial 5
        ["/cb/x/0", 12.0, 6, 9, "2.1"],  # holds serial 9
        ["/cb/x/1", 11.0, 1, 9, "3.2"],  # one notification holds both
    ]
    targets = {"/cb/x/0": [(5, 10.0), (9, 11.0)], "/cb/x/1": [(5, 10.0), (9, 11.0)]}
    got = coverage(log, targets)
    assert got["pairs"] == 4
    assert got["lost"] == 0
    assert got["duplicates"] == 0
    assert got["first_ms"] == 0.0  # /cb/x/1 got serial 9 at 11.0, changed at 11.0
    assert got["last_ms"] == 1000.0  # serial 5 at 11.0 and serial 9 at 12.0
    assert got["median_ms"] == 750.0


def test_losses_repeats_and_strays_are_counted() -> None:
    log = [
        ["/cb/x/0", 10.5, 1, 5, "1.1"],
        ["/cb/x/0", 10.9, 1, 5, "1.1"],  # the same notification again
        ["/cb/x/0", 11.0, 4, 7, "2.1"],  # overlaps serials already delivered
        ["/cb/other/0", 11.0, 1, 5, "1.9"],
    ]
    targets = {"/cb/x/0": [(5, 10.0), (8, 10.0)], "/cb/x/1": [(5, 10.0)]}
    got = coverage(log, targets)
    assert got["lost"] == 2  # serial 8 to /cb/x/0, everything to /cb/x/1
    assert got["duplicates"] == 2
    assert got["stray_deliveries"] == 1
    assert got["median_ms"] == 500.0


def test_the_poller_log_gives_when_each_round_was_published() -> None:
    text = (
        "2026-12-03 15:59:06,377 INFO workers.poller[1]: h:1: serials 1..1321: 1000 entries, "
        "334 notifications\n"
        "2026-12-03 15:59:06,522 INFO workers.poller[1]: h:1: serials 1322..2648: 1000 "
        "entries, 334 notifications\n"
        "2026-12-03 15:59:07,000 INFO workers.poller[1]: something else\n"
    )
    rounds = poller_rounds(text)
    assert [(a, b) for a, b, _ in rounds] == [(1, 1321), (1322, 2648)]
    assert round(rounds[1][2] - rounds[0][2], 3) == 0.145
    start = rounds[0][2] - 1.0
    got = published(rounds, [(5, start), (2000, start)])
    assert got["rounds"] == 2
    assert got["published_max_ms"] == 1145.0
