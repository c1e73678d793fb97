"""The web app: run API, static page, security (path traversal, hosts, origins) and the playground
WebSocket under bad, oversized and concurrent clients."""

import http.client
import json
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")                       # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from contrastlab.dashboard import live
from contrastlab.dashboard.app import create_app
from contrastlab.dashboard.synthetic import write_synthetic_run

SECRET = "s3cr3t-token-that-must-never-leak"
WS = "ws://127.0.0.1/ws/playground"


@pytest.fixture
def runs(tmp_path):
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "run" / "secret.txt").parent.mkdir()
    write_synthetic_run(tmp_path / "run", points=40, snapshots=3)
    (tmp_path / "run" / "secret.txt").write_text(SECRET)
    (tmp_path / "empty").mkdir()
    return [tmp_path / "run", tmp_path / "empty", tmp_path / "missing"]


@pytest.fixture
def client(runs):
    return TestClient(create_app(runs), base_url="http://127.0.0.1")


def test_page_and_static_files_with_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and "contrastlab" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    for name in ("main.js", "playground.js", "pgcontrols.js", "pgdraw.js", "runview.js", "scatter.js", "common.js",
                 "style.css"):
        assert client.get(f"/static/{name}").status_code == 200, name
    page = r.text
    assert "http://" not in page and "https://" not in page and "//cdn" not in page  # nothing from elsewhere


def test_run_api(client):
    runs = client.get("/api/runs").json()
    assert [r["state"] for r in runs] == ["done", "empty", "missing"]
    s = client.get("/api/runs/0").json()
    assert [x["step"] for x in s["snapshots"]] == [0, 100, 200] and s["probe"]["count"] == 40
    m = client.get("/api/runs/0/metrics", params={"offset": 0}).json()
    assert m["records"] and m["offset"] > 0
    labels = client.get("/api/runs/0/labels")
    with np.load(s["path"] + "/snapshots/probe.npz") as f:
        np.testing.assert_array_equal(np.frombuffer(labels.content, "<i4"), f["labels"])
    mp = client.get("/api/runs/0/snapshots/2/map")
    assert mp.headers["x-step"] == "200" and np.frombuffer(mp.content, "<f4").shape == (80,)
    nb = client.get("/api/runs/0/snapshots/2/neighbours", params={"point": 3, "count": 5}).json()
    assert len(nb) == 5 and all(n["point"] != 3 for n in nb)
    torn = Path(s["path"]) / "snapshots" / "step-00000300.npz"
    torn.write_bytes(b"PK\x03\x04 partial")
    assert client.get("/api/runs/0/snapshots/3/map").status_code == 204          # listed, not readable yet
    png = client.get("/api/runs/0/thumbnails/3")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("url,status", [
    ("/api/runs/3", 404), ("/api/runs/-1", 404), ("/api/runs/1/labels", 404), ("/api/runs/2/snapshots/0/map", 404),
    ("/api/runs/0/snapshots/3/map", 404), ("/api/runs/0/snapshots/-1/map", 404),
    ("/api/runs/0/snapshots/0/map?method=tsne2", 422),
    ("/api/runs/0/metrics?offset=-5", 422), ("/api/runs/0/snapshots/0/neighbours?point=999", 404),
    ("/api/runs/0/snapshots/0/neighbours", 422), ("/api/runs/0/thumbnails/40", 404), ("/api/runs/x", 422),
])
def test_bad_requests_get_clear_errors(client, url, status):
    assert client.get(url).status_code == status


TRAVERSALS = [
    "/static/../../../../../../etc/passwd", "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/%252e%252e/%252e%252e/etc/passwd",
    "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/..\\..\\..\\etc\\passwd",
    "/api/runs/../../etc/passwd", "/api/runs/..%2F..%2Fsecret.txt", "/api/runs/0/../../secret.txt",
    "/api/runs/0/snapshots/..%2F..%2Fsecret.txt/map", "/api/runs/0/snapshots/..%2Fsecret.txt/map",
    "/api/runs/0/thumbnails/..%2F..%2Fsecret.txt", "/api/runs/%2Ftmp%2Fsecret.txt",
    "/api/runs/0%2F..%2F..%2Fsecret.txt", "/static/../secret.txt", "/../secret.txt", "//etc/passwd",
    "/api/runs/0/snapshots/0/map?method=../../secret.txt", "/static/%00../../etc/passwd",
    "/api/runs/0/snapshots/0%00/map",
]
#: An unknown query parameter is ignored (the answer is the run's own metrics), never used as a path.
IGNORED = ["/api/runs/0/metrics?offset=0&path=../secret.txt", "/api/runs/0?file=/etc/passwd"]


def test_path_traversal_is_refused_over_a_real_socket(runs, server_for):
    """Raw requests (no client-side URL normalisation) against a live server: nothing outside the
    static folder or the run API comes back."""
    base = urlsplit(server_for(runs))
    for path in TRAVERSALS + IGNORED:
        conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read().decode("latin-1")
        conn.close()
        assert resp.status in ((200,) if path in IGNORED else (400, 404, 405, 422)), (path, resp.status)
        assert SECRET not in body and "root:" not in body, path


def test_foreign_hosts_and_origins_are_refused(runs, server_for):
    c = TestClient(create_app(runs), base_url="http://127.0.0.1")
    assert c.get("/api/runs", headers={"host": "evil.example"}).status_code == 400        # DNS rebinding
    with pytest.raises((WebSocketDenialResponse, WebSocketDisconnect)):
        with c.websocket_connect(WS, headers={"origin": "http://evil.example"}) as ws:
            ws.receive_text()


def frames(ws, count):
    """Read messages until ``count`` frames arrived; returns (frames, other JSON messages)."""
    got, other = [], []
    while len(got) < count:
        m = ws.receive()
        if m.get("bytes") is not None:
            continue
        obj = json.loads(m["text"])
        (got if obj["type"] == "frame" else other).append(obj)
    return got, other


def until(ws, kind):
    while True:
        m = ws.receive()
        if m.get("text") is not None:
            obj = json.loads(m["text"])
            if obj["type"] == kind:
                return obj


def test_websocket_survives_bad_messages(client):
    with client.websocket_connect(WS) as ws:
        init = until(ws, "init")
        assert {c["name"] for c in init["controls"]} >= {"temperature", "loss", "no_negatives"}
        bad = ["{", "[]", json.dumps({"type": "boom"}), "x" * 10_000, json.dumps({"type": "set", "values": {"lr": -1}}),
               json.dumps({"type": "set", "values": {"points": 20, "batch_size": 64}})]
        for text in bad:
            ws.send_text(text)
        ws.send_bytes(b"\x00\x01")
        errors = [until(ws, "error")["message"] for _ in range(len(bad) + 1)]
        assert any("valid JSON" in e for e in errors) and any("binary" in e for e in errors)
        assert any("at most 4096 bytes" in e for e in errors) and any("`lr`" in e for e in errors)
        assert any("`batch_size` must be at most points / 2" in e for e in errors)
        ws.send_text(json.dumps({"type": "ping", "id": 42}))
        assert until(ws, "pong")["id"] == 42                                  # still alive
        ws.send_text(json.dumps({"type": "set", "values": {"temperature": 0.37}}))
        for _ in range(50):
            f, _ = frames(ws, 1)
            if f[0]["settings"]["temperature"] == 0.37:
                break
        else:
            pytest.fail("the new temperature never reached a frame")


def test_frame_json_and_binary_arrive_as_pairs(client):
    with client.websocket_connect(WS) as ws:
        ws.send_text(json.dumps({"type": "set", "values": {"points": 50, "batch_size": 5, "dim": 3}}))
        for _ in range(30):
            m = ws.receive()
            if m.get("text") and json.loads(m["text"])["type"] == "frame":
                meta = json.loads(m["text"])
                blob = np.frombuffer(ws.receive()["bytes"], "<f4")
                assert blob[1] == meta["seq"] and blob[3] == meta["step"]
                if blob[4] == 50:
                    assert blob[5] == 3
                    return
        pytest.fail("no frame with the new settings")


def test_pause_step_and_reset(client):
    with client.websocket_connect(WS) as ws:
        until(ws, "init")
        ws.send_text(json.dumps({"type": "pause"}))
        f = until(ws, "frame")
        while f["running"]:
            f = until(ws, "frame")
        paused_at = f["step"]
        ws.send_text(json.dumps({"type": "step", "count": 3}))
        f = until(ws, "frame")
        assert f["step"] == paused_at + 3 and not f["running"]
        ws.send_text(json.dumps({"type": "anchor", "index": 5}))
        assert until(ws, "frame")["anchor"]["point"] == 5
        ws.send_text(json.dumps({"type": "reset"}))
        assert until(ws, "init")["history"]["step"] == []
        assert until(ws, "frame")["step"] == 0


def test_many_tabs_at_once_and_a_session_limit(runs):
    c = TestClient(create_app(runs, max_sessions=3), base_url="http://127.0.0.1")
    with c.websocket_connect(WS) as a, c.websocket_connect(WS) as b, c.websocket_connect(WS) as d:
        for ws in (a, b, d):
            frames(ws, 2)
        a.send_text(json.dumps({"type": "set", "values": {"temperature": 1.5}}))
        with c.websocket_connect(WS) as extra:
            assert "too many playground connections" in json.loads(extra.receive_text())["message"]
        frames(b, 2)                                                           # the others keep going


def test_an_engine_error_is_reported_and_the_server_lives_on(client, monkeypatch):
    def broken(self, count=1, **options):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(live.Playground, "step", broken)
    with client.websocket_connect(WS) as ws:
        err = until(ws, "error")
        assert "kaboom" in err["message"] and "paused" in err["message"]
        ws.send_text(json.dumps({"type": "ping", "id": "x"}))
        assert until(ws, "pong")["id"] == "x"
    assert client.get("/api/info").status_code == 200


def test_playground_can_be_turned_off(runs):
    c = TestClient(create_app(runs, playground=False), base_url="http://127.0.0.1")
    assert c.get("/api/info").json()["playground"] is False
    with pytest.raises((WebSocketDenialResponse, WebSocketDisconnect)):
        with c.websocket_connect(WS) as ws:
            ws.receive_text()
