"""Download a profile's data file: resumable, checksum-verified, never half-written.

``python -m latentshift fetch params/m1.yaml`` (or ``make data``) reads the profile's
``data.url``, ``data.sha256`` and ``data.path`` and downloads the file to ``data.path``
(relative paths are taken from the project root, normally ``data/...``).

How a download stays safe:

* Bytes go to ``<path>.part``; the final name appears only after the SHA-256 checksum matches
  (``os.replace``), so a broken or interrupted download is never mistaken for a good one.
* An existing ``.part`` is resumed with an HTTP ``Range: bytes=N-`` request; a server that answers
  ``200`` instead of ``206 Partial Content`` is downloaded again from the start.
* A dropped connection is retried (``retries`` times), each time resuming from the ``.part`` size.
* A wrong checksum deletes the ``.part`` file and raises :class:`DownloadError` naming both
  checksums.
* A file already at the final name whose checksum matches is not downloaded again.

Only the standard library (``urllib.request``) is used, plus ``tqdm`` for the progress bar.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from latentshift.errors import DownloadError

log = logging.getLogger(__name__)

#: URL schemes :func:`download` accepts.
SCHEMES: tuple[str, ...] = ("http", "https", "file")

_README_HINT = 'see the README section "Real M1 data"'
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Errors that mean "the connection broke": retried, resuming from the .part size.
# (urllib.error.HTTPError is a URLError too; it is handled before these are caught.)
_TRANSIENT = (
    http.client.IncompleteRead,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    urllib.error.URLError,
)


class _Incomplete(Exception):
    """The stream ended before all bytes arrived (treated like a dropped connection)."""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 checksum of a file, read in chunks.

    Parameters
    ----------
    path
        The file.
    chunk_size
        Bytes read at a time.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    if not _SHA256_RE.match(value):
        raise DownloadError(
            f"data.sha256 {sha256!r} is not a SHA-256 checksum (64 hex digits). "
            "Fix data.sha256 in the profile, or set it to null to download without verifying."
        )
    return value


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in SCHEMES:
        shown = f"'{scheme}'" if scheme else "no scheme"
        raise DownloadError(
            f"cannot download {url!r}: the URL has {shown}; only {', '.join(SCHEMES)} URLs are "
            "supported. Fix data.url in the profile (e.g. https://...)."
        )


def _content_range(resp: Any) -> tuple[int | None, int | None]:
    """``(start, total)`` from a ``Content-Range: bytes START-END/TOTAL`` (or ``*/TOTAL``) header."""
    value = resp.headers.get("Content-Range") if resp.headers is not None else None
    if not value:
        return None, None
    m = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _content_length(resp: Any) -> int | None:
    value = resp.headers.get("Content-Length") if resp.headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _open(url: str, offset: int, timeout: float) -> Any:
    """Open ``url``, asking for bytes from ``offset`` on when ``offset > 0``."""
    headers = {"User-Agent": "latentshift-fetch", "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (scheme checked)


def _attempt(
    url: str, part: Path, chunk_size: int, timeout: float, progress: bool, desc: str
) -> None:
    """One request: append to (or restart) ``part`` until the body ends.

    Raises one of ``_TRANSIENT`` or :class:`_Incomplete` when the connection breaks early.
    """
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset > 0:
            # Range not satisfiable: the .part is already complete, or longer than the file.
            _, total = _content_range(exc)
            exc.close()
            if total is not None and total == offset:
                log.info("%s: the partial file is already complete (%d bytes)", desc, offset)
                return
            log.warning(
                "%s: the server cannot resume from byte %d (file is %s bytes); starting over",
                desc,
                offset,
                total if total is not None else "an unknown number of",
            )
            part.unlink()
            raise _Incomplete("restart after 416") from None
        if 500 <= exc.code < 600:
            raise  # server trouble: retried by the caller
        raise DownloadError(
            f"downloading {url} failed: HTTP {exc.code} {exc.reason}. "
            "Check data.url in the profile (open it in a browser to see whether it still works)."
        ) from None
    with resp:
        status = getattr(resp, "status", None)
        start, total = _content_range(resp)
        length = _content_length(resp)
        if offset > 0 and status == 206:
            if start is not None and start != offset:
                log.warning(
                    "%s: asked to resume at byte %d, server sent from byte %d; starting over",
                    desc,
                    offset,
                    start,
                )
                part.unlink()
                raise _Incomplete("range mismatch")
            mode = "ab"
            if total is None and length is not None:
                total = offset + length
            log.info("%s: resuming at %.1f MB", desc, offset / 1e6)
        else:
            if offset > 0:
                log.info(
                    "%s: the server does not support resuming; downloading from the start", desc
                )
            offset = 0
            mode = "wb"
            total = length
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not progress,
            leave=False,
        )
        received = offset
        with bar, open(part, mode) as fh:
            while True:
                block = resp.read(chunk_size)
                if not block:
                    break
                fh.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received < total:
        raise _Incomplete(f"connection closed after {received} of {total} bytes")
    if total is not None and received > total:
        part.unlink()
        raise _Incomplete(f"received {received} bytes, more than the announced {total}")


def _keep_existing(dest: Path, expected: str | None, chunk_size: int) -> bool:
    """Whether the file already at ``dest`` is kept: it verifies, or there is no checksum.

    A file whose checksum is not the expected one is downloaded again (and replaced only once
    the new one verifies).
    """
    if expected is None:
        log.warning(
            "%s already exists and no data.sha256 is given, so it cannot be verified; "
            "keeping it (delete it to download again)",
            dest,
        )
        return True
    actual = sha256_file(dest, chunk_size)
    if actual == expected:
        log.info("%s: already downloaded (checksum matches)", dest)
        return True
    log.warning(
        "%s exists but its checksum %s is not the expected %s; downloading it again "
        "(the old file is replaced only once the new one verifies)",
        dest,
        actual,
        expected,
    )
    return False


def download(
    url: str,
    dest: str | Path,
    sha256: str | None,
    chunk_size: int = 1 << 20,
    retries: int = 3,
    progress: bool = True,
    timeout: float = 60,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming and verifying; the final name appears only when good.

    Parameters
    ----------
    url
        An ``http``, ``https`` or ``file`` URL.
    dest
        The final file path (its folder is created).
    sha256
        The expected hex SHA-256 checksum (case-insensitive, an optional ``sha256:`` prefix is
        allowed); ``None`` downloads without verifying (with a warning that logs the actual
        checksum, to paste into the profile).
    chunk_size
        Bytes read per block.
    retries
        How many times a dropped connection (or an HTTP 5xx) is retried, each time resuming from
        the size of ``<dest>.part``.
    progress
        Show a tqdm progress bar.
    timeout
        Socket timeout in seconds (for connecting and for each read).
    backoff
        Seconds to wait before the first retry; doubled for each further retry (at most 30).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DownloadError
        On an unsupported URL scheme, a malformed checksum, an HTTP error such as 404, a
        connection that keeps dropping after ``retries`` retries, or a checksum mismatch (the
        ``.part`` file is deleted then).
    """
    dest = Path(dest)
    _check_scheme(url)
    expected = _normalise_sha256(sha256)
    part = dest.with_name(dest.name + ".part")

    if dest.exists() and _keep_existing(dest, expected, chunk_size):
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s → %s", url, dest)
    failures = 0
    while True:
        try:
            _attempt(url, part, chunk_size, timeout, progress, dest.name)
            break
        except DownloadError:
            raise
        except (_Incomplete, *_TRANSIENT) as exc:
            failures += 1
            if failures > retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"downloading {url} failed after {retries} retries ({exc}). "
                    f"{have} bytes are kept in {part}; run the same command again to resume, "
                    "or check your network connection and data.url in the profile."
                ) from exc
            wait = min(backoff * 2 ** (failures - 1), 30.0)
            have = part.stat().st_size if part.exists() else 0
            log.warning(
                "%s: connection problem (%s); retry %d of %d in %.1f s, resuming at byte %d",
                dest.name,
                exc,
                failures,
                retries,
                wait,
                have,
            )
            if wait > 0:
                time.sleep(wait)

    if not part.exists():  # an empty body never opened the file for writing
        part.touch()
    actual = sha256_file(part, chunk_size)
    if expected is None:
        log.warning(
            "no data.sha256 in the profile: %s cannot be verified. Its SHA-256 is %s; put "
            "that in data.sha256 to verify future downloads.",
            dest,
            actual,
        )
    elif actual != expected:
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}. "
            f"The partial file {part} was deleted. Check data.sha256 in the profile (is it the "
            "checksum of this file?) and data.url (does it still point at the same file?), "
            "then run the download again."
        )
    os.replace(part, dest)
    log.info(
        "%s: done (%d bytes%s)", dest, dest.stat().st_size, ", checksum OK" if expected else ""
    )
    return dest


def fetch_profile(params: Mapping[str, Any], root: str | Path, **kwargs: Any) -> Path:
    """Download the data file named by a profile's ``data`` section.

    Parameters
    ----------
    params
        Validated params (from :func:`latentshift.config.load_params`); uses ``data.url``,
        ``data.path`` (relative paths are taken from ``root``) and ``data.sha256``.
    root
        The project root.
    **kwargs
        Passed on to :func:`download` (``retries``, ``progress``, ``timeout``, ...).

    Returns
    -------
    Path
        The downloaded (or already present) file.

    Raises
    ------
    DownloadError
        When ``data.url`` or ``data.path`` is missing, or the download fails.
    """
    data = params.get("data") or {}
    for key, what in (
        ("url", "the URL to download the .h5ad file from"),
        ("path", "where to save it, e.g. data/m1.h5ad"),
    ):
        if not data.get(key):
            raise DownloadError(
                f"params key 'data.{key}' is not set, so there is nothing to download: fill in "
                f"data.{key} ({what}) in the profile; {_README_HINT}."
            )
    dest = Path(data["path"]).expanduser()
    if not dest.is_absolute():
        dest = Path(root) / dest
    return download(data["url"], dest, data.get("sha256"), **kwargs)
