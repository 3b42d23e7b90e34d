"""Tests for latentshift.data.fetch against a loopback HTTP server with Range support."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import re
import threading
from pathlib import Path

import pytest

from latentshift.data.fetch import DownloadError, download, fetch_profile, sha256_file

SIZE = 3 * (1 << 20) + 12345  # ~3 MB, not a multiple of the chunk size


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``root``; honours ``Range: bytes=N-``; can cut the first response.

    Per-server settings live on a subclass made by the fixture:
    ``root`` (folder), ``cut_after`` (bytes sent on the first GET before the socket is closed,
    None: never), ``ignore_range`` (answer 200 to Range requests), ``requests`` (a list the
    handler appends ``(path, Range header or None)`` to).
    """

    protocol_version = "HTTP/1.1"
    root: Path
    cut_after: int | None = None
    ignore_range = False
    requests: list

    def log_message(self, format, *args):  # noqa: A002 - quiet server
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        rng = self.headers.get("Range")
        self.requests.append((self.path, rng))
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404, "not found")
            return
        body = path.read_bytes()
        start = 0
        m = re.match(r"^bytes=(\d+)-$", rng or "")
        if m and not self.ignore_range:
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cls = type(self)
        if cls.cut_after is not None:
            cut, cls.cut_after = cls.cut_after, None  # only the first request is cut
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def blob(tmp_path: Path) -> tuple[bytes, str]:
    """A random file served as /m1.h5ad, and its checksum."""
    served = tmp_path / "served"
    served.mkdir()
    data = os.urandom(SIZE)
    (served / "m1.h5ad").write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path: Path, blob):
    """A loopback HTTP server; yields ``(base_url, handler_class)``; shut down afterwards."""
    handler = type(
        "Handler", (RangeHandler,), {"root": tmp_path / "served", "requests": [], "cut_after": None}
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _get(dest: Path, url: str, sha: str | None, **kw) -> Path:
    kw.setdefault("progress", False)
    kw.setdefault("timeout", 5)
    kw.setdefault("backoff", 0)
    kw.setdefault("chunk_size", 1 << 16)
    return download(url, dest, sha, **kw)


def test_download_with_checksum(tmp_path, server, blob):
    base, handler = server
    data, sha = blob
    dest = tmp_path / "data" / "m1.h5ad"
    out = _get(dest, f"{base}/m1.h5ad", sha.upper())  # case-insensitive
    assert out == dest
    assert dest.read_bytes() == data
    assert not dest.with_name("m1.h5ad.part").exists()
    assert handler.requests == [("/m1.h5ad", None)]


def test_resume_after_cut_connection(tmp_path, server, blob, caplog):
    base, handler = server
    data, sha = blob
    handler.cut_after = SIZE // 2
    dest = tmp_path / "data" / "m1.h5ad"
    with caplog.at_level(logging.INFO, logger="latentshift.data.fetch"):
        _get(dest, f"{base}/m1.h5ad", sha)
    assert sha256_file(dest) == sha
    assert dest.read_bytes() == data
    assert len(handler.requests) == 2
    assert handler.requests[0][1] is None
    # the retry asked for the rest only, from exactly where the cut happened
    assert handler.requests[1][1] == f"bytes={SIZE // 2}-"
    assert "resuming" in caplog.text


def test_resume_existing_part_file(tmp_path, server, blob):
    base, handler = server
    data, sha = blob
    dest = tmp_path / "m1.h5ad"
    dest.with_name("m1.h5ad.part").write_bytes(data[:1000])  # left by an interrupted run
    _get(dest, f"{base}/m1.h5ad", sha)
    assert dest.read_bytes() == data
    assert handler.requests == [("/m1.h5ad", "bytes=1000-")]


def test_server_ignoring_range_starts_over(tmp_path, server, blob):
    base, handler = server
    data, sha = blob
    handler.ignore_range = True
    dest = tmp_path / "m1.h5ad"
    dest.with_name("m1.h5ad.part").write_bytes(b"junk" * 100)
    _get(dest, f"{base}/m1.h5ad", sha)
    assert dest.read_bytes() == data


def test_complete_part_file_is_finished_via_416(tmp_path, server, blob):
    base, handler = server
    data, sha = blob
    dest = tmp_path / "m1.h5ad"
    dest.with_name("m1.h5ad.part").write_bytes(data)
    _get(dest, f"{base}/m1.h5ad", sha)
    assert dest.read_bytes() == data
    assert handler.requests == [("/m1.h5ad", f"bytes={SIZE}-")]


def test_checksum_mismatch_leaves_nothing(tmp_path, server, blob):
    base, _ = server
    dest = tmp_path / "data" / "m1.h5ad"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        _get(dest, f"{base}/m1.h5ad", wrong)
    msg = str(err.value)
    assert wrong in msg and blob[1] in msg and "data.sha256" in msg
    assert not dest.exists()
    assert not dest.with_name("m1.h5ad.part").exists()


def test_existing_correct_file_not_downloaded_again(tmp_path, server, blob, caplog):
    base, handler = server
    data, sha = blob
    dest = tmp_path / "m1.h5ad"
    dest.write_bytes(data)
    with caplog.at_level(logging.INFO, logger="latentshift.data.fetch"):
        _get(dest, f"{base}/m1.h5ad", sha)
    assert handler.requests == []
    assert "already downloaded" in caplog.text


def test_existing_wrong_file_is_replaced(tmp_path, server, blob):
    base, handler = server
    data, sha = blob
    dest = tmp_path / "m1.h5ad"
    dest.write_bytes(b"stale")
    _get(dest, f"{base}/m1.h5ad", sha)
    assert dest.read_bytes() == data
    assert len(handler.requests) == 1


def test_no_checksum_warns_and_keeps_file(tmp_path, server, blob, caplog):
    base, _ = server
    data, sha = blob
    dest = tmp_path / "m1.h5ad"
    with caplog.at_level(logging.WARNING, logger="latentshift.data.fetch"):
        _get(dest, f"{base}/m1.h5ad", None)
    assert dest.read_bytes() == data
    assert "cannot be verified" in caplog.text and sha in caplog.text


def test_gives_up_after_retries(tmp_path, server, blob):
    base, handler = server
    dest = tmp_path / "m1.h5ad"
    handler.cut_after = 1000
    with pytest.raises(DownloadError, match="after 0 retries"):
        _get(dest, f"{base}/m1.h5ad", blob[1], retries=0)
    assert not dest.exists()
    # the bytes received are kept for the next run to resume
    assert dest.with_name("m1.h5ad.part").stat().st_size == 1000


def test_http_404_is_a_clear_error(tmp_path, server, blob):
    base, handler = server
    with pytest.raises(DownloadError, match="HTTP 404.*data.url"):
        _get(tmp_path / "x.h5ad", f"{base}/missing.h5ad", None)
    assert len(handler.requests) == 1  # not retried


def test_file_url(tmp_path, blob):
    data, sha = blob
    src = tmp_path / "served" / "m1.h5ad"
    dest = tmp_path / "copy.h5ad"
    _get(dest, src.as_uri(), sha)
    assert dest.read_bytes() == data


@pytest.mark.parametrize(
    "url", ["ftp://example.org/m1.h5ad", "s3://bucket/m1.h5ad", "data/m1.h5ad"]
)
def test_bad_scheme(tmp_path, url):
    with pytest.raises(DownloadError, match="only http, https, file"):
        _get(tmp_path / "m1.h5ad", url, None)


def test_malformed_checksum(tmp_path):
    with pytest.raises(DownloadError, match="64 hex digits"):
        _get(tmp_path / "m1.h5ad", "http://127.0.0.1:9/m1.h5ad", "abc123")


def test_fetch_profile(tmp_path, server, blob):
    base, _ = server
    data, sha = blob
    params = {"data": {"url": f"{base}/m1.h5ad", "path": "data/m1.h5ad", "sha256": sha}}
    out = fetch_profile(params, tmp_path, progress=False, timeout=5)
    assert out == tmp_path / "data" / "m1.h5ad"
    assert out.read_bytes() == data


@pytest.mark.parametrize("missing", ["url", "path"])
def test_fetch_profile_missing_key(tmp_path, missing):
    data = {"url": "http://127.0.0.1:9/m1.h5ad", "path": "data/m1.h5ad", "sha256": None}
    data[missing] = None
    with pytest.raises(DownloadError) as err:
        fetch_profile({"data": data}, tmp_path)
    msg = str(err.value)
    assert f"data.{missing}" in msg and "Real M1 data" in msg
    assert issubclass(DownloadError, ValueError)
