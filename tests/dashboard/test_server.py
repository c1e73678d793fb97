"""serve(): prints its URL, takes port 0, refuses a busy port clearly, stops on Ctrl-C; the real
server closes over-large WebSocket messages without falling over."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from contrastlab.dashboard.server import bind, dashboard, url_for


def test_url_for_and_bind():
    assert url_for("127.0.0.1", 8765) == "http://127.0.0.1:8765/"
    assert url_for("0.0.0.0", 80) == "http://127.0.0.1:80/"
    assert url_for("::1", 9) == "http://[::1]:9/"
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
    with pytest.raises(ValueError, match="`port` must be an integer in \\[0, 65535\\], got 70000"):
        bind("127.0.0.1", 70000)


def test_a_busy_port_is_an_error_with_a_hint(capsys):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        assert dashboard([], port=port, open_browser=False) == 2
        err = capsys.readouterr().err
        assert f"cannot listen on 127.0.0.1:{port}" in err and "--port 0" in err
    finally:
        busy.close()


def test_serve_prints_the_real_port_and_stops_on_ctrl_c(tmp_path):
    code = ("from contrastlab.dashboard.server import serve; "
            f"serve([{str(tmp_path / 'run')!r}], port=0, open_browser=False)")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m and int(m.group(1)) > 0, line
        url = m.group(0)
        assert "missing" in proc.stdout.readline()                              # run 0 does not exist yet
        for _ in range(200):                                                    # wait until it answers
            try:
                with urllib.request.urlopen(url + "api/runs", timeout=2) as r:
                    runs = json.load(r)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stderr.read())
                time.sleep(0.05)
        assert runs[0]["state"] == "missing"
        with connect(url.replace("http", "ws") + "ws/playground", max_size=None) as ws:
            assert json.loads(ws.recv(timeout=20))["type"] == "init"
            ws.send("y" * 100_000)                                              # over the server's frame limit
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        with connect(url.replace("http", "ws") + "ws/playground") as ws:        # the server lives on
            assert json.loads(ws.recv(timeout=20))["type"] == "init"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)                                 # generous: shared, loaded CI cores
        assert proc.returncode == 0, err
        assert "stopped" in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
