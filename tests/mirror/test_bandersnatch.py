"""End to end with bandersnatch 6.8.0 (the newest for Python 3.11) through ``--exec``.

bandersnatch writes a static mirror; a plain HTTP server serves it, as nginx would.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.mirror.tools import pip_download, spawn_listening, tool

CONF = """[mirror]
directory = {directory}
master = {master}
allow-non-https = true
json = false
timeout = 10
global-timeout = 120
workers = 1
hash-index = false
stop-on-error = true
storage-backend = filesystem
verifiers = 1
compare-method = hash
release-files = true
"""


def test_push_runs_bandersnatch_sync(index_url, hub, pypi, agent, tmp_path):
    directory = tmp_path / "bandersnatch"
    conf = tmp_path / "bandersnatch.conf"
    conf.write_text(CONF.format(directory=directory, master=index_url))
    (directory / "web").mkdir(parents=True)
    web = spawn_listening("static-mirror", [
        sys.executable, "-m", "tests.mirror.static_server", str(directory / "web")])
    try:
        before = pypi.release("Snatch_Me", "1.0")[-1]
        mirror = agent(
            "--hub", hub.url, "--index", index_url, "--coalesce-seconds", "0.2",
            "--exec", f"{tool('bandersnatch', 'bandersnatch')} -c {conf} sync {{projects}}",
            "--verify-url", f"{web.url}/simple/{{project}}/", "--deny", "never-*")
        hub.wait_subscribed()
        pypi.release("Never_Mirrored", "1.0")
        until = pypi.release("Snatch_Me", "1.1")[-1]
        assert pip_download("snatch-me", "1.1", web.url + "/simple/", tmp_path).returncode != 0

        assert hub.push(hub.firehose(), before, until) == [202]
        mirror.wait_synced(timeout=120)
        assert pip_download("snatch-me", "1.1", web.url + "/simple/", tmp_path).returncode == 0
        assert not (directory / "web" / "simple" / "never-mirrored").exists()  # --deny
        assert mirror.metric("broker_hub_mirror_filtered_total") == 1
        assert "sync snatch-me" in mirror.log()
    finally:
        web.stop()


def test_bandersnatch_is_the_pinned_version():
    done = Path(tool("bandersnatch", "python"))
    assert done.exists()
    import subprocess

    version = subprocess.run([str(done), "-c", "import importlib.metadata as m; "
                              "print(m.version('bandersnatch'))"], capture_output=True,
                             text=True, check=True, timeout=60).stdout.strip()
    assert version == "6.8.0"
