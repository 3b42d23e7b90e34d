"""Render report pages in headless Chromium and check them against the page contract.

The page contract
-----------------
Every rendered report page (``reports/<profile>/index.html``, ``01_data.html`` ...
``06_loadings.html``, ``sweep.html``) must satisfy the following when opened from disk in a
1400 px wide browser window:

Findings box
    An element with ``id="findings"`` and class ``findings``, visible, with non-empty text.
Navigation
    A ``<nav class="ls-nav">`` element with links (``a[href]``). On every page but
    ``index.html`` one of them points to the ``index.html`` beside the page; ``index.html``
    links to the pages. When the caller gives the reading order (``sequence``), a page's nav
    also links to the page before it and the page after it.
Working links
    Every relative link on the page (in the nav and elsewhere) resolves to an existing file,
    and a ``#fragment`` to an element with that ``id`` (or ``<a name>``) in the target page.
    Absolute links (``https:``, ``mailto:`` ...) are not followed.
No stderr or error blocks
    nbconvert's ``lab`` template renders a stream output on stderr *and* an error output
    (exception with traceback) both as ``<div class="jp-RenderedText jp-OutputArea-output"
    data-mime-type="application/vnd.jupyter.stderr"><pre>...</pre></div>`` (the red block);
    papermill marks a failed notebook with a cell tagged ``papermill-error-cell-tag``, which the
    template turns into the class ``celltag_papermill-error-cell-tag``. Any such element that
    is visible is a failure.
No JavaScript errors
    No uncaught exception (``Runtime.exceptionThrown``), no ``console.error`` or failed
    ``console.assert``, and no error the browser logs itself (a local script, stylesheet or
    frame that does not load, a blocked resource ...). Remote resources (``http:``/``https:``,
    e.g. the require.js and MathJax ``<script>`` tags of nbconvert's template) are never
    fetched -- the browser resolves no host name -- and their failed loads are not counted
    unless ``allow_remote=False``; code that depends on them and breaks still fails with a
    JavaScript error.
Images
    Every ``<img>`` has loaded: ``complete`` and ``naturalWidth > 0`` (report figures are
    embedded, so a remote image fails too).
Width
    ``document.documentElement.scrollWidth`` (and the body's) is at most 1400 px at a
    1400 px wide viewport.
Code hidden (optional, ``code_hidden=True``)
    No code input area (``.jp-CodeCell .jp-InputArea``, the ``<div class="jp-InputArea
    jp-Cell-inputArea">`` inside ``<div class="jp-Cell jp-CodeCell ...">``) is visible, whether
    it is hidden by a collapsed ``<details>`` element, by CSS (``display: none``,
    ``visibility: hidden``, ``content-visibility: hidden``) or left out (nbconvert's
    ``exclude_input``).

"Visible" is Chromium's ``Element.checkVisibility({checkOpacity, checkVisibilityCSS})``: false
for an element that is not rendered (``display: none`` on it or an ancestor, content of a
closed ``<details>``), ``visibility: hidden`` or ``opacity: 0``.

The driver
----------
Chromium is driven over its DevTools protocol (CDP) with ``websocket-client``; no WebDriver,
no Node.js and no browser download. One browser serves all pages of a :func:`check_pages`
call; each page gets a fresh tab.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

#: The viewport width the pages are rendered at, and the widest page allowed, in CSS pixels.
VIEWPORT_WIDTH = 1400
VIEWPORT_HEIGHT = 900
MAX_WIDTH = 1400

#: The markup of visible failures in nbconvert's ``lab`` template (see the module docstring).
STDERR_SELECTOR = '[data-mime-type="application/vnd.jupyter.stderr"]'
PAPERMILL_ERROR_SELECTOR = ".celltag_papermill-error-cell-tag"
#: Code input areas of code cells in nbconvert's ``lab`` template.
CODE_INPUT_SELECTOR = ".jp-CodeCell .jp-InputArea"

#: Debian's package installs ``/usr/bin/chromium``; the other names cover other systems.
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")

#: Flags for a quiet, offline, reproducible headless run (as root too: ``--no-sandbox``).
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    # Resolve no host at all: pages are checked from disk, remote resources fail at once.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-port=0",
    f"--window-size={VIEWPORT_WIDTH},{VIEWPORT_HEIGHT}",
)

_REMOTE_SCHEMES = ("http:", "https:", "ws:", "wss:", "ftp:")


class BrowserError(RuntimeError):
    """Chromium could not be started or stopped answering."""


def in_ci() -> bool:
    """Whether this runs in CI (``CI`` set to ``true``, ``1`` or ``yes``).

    Returns
    -------
    bool
        True in CI, where a missing browser fails the browser tests instead of skipping them.
    """
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def chromium_path() -> str | None:
    """Find a Chromium (or Chrome) executable.

    Returns
    -------
    str or None
        ``$CHROMIUM`` when set, else Debian's ``/usr/bin/chromium``, else the first of
        ``chromium``, ``chromium-browser``, ``google-chrome-stable``, ``google-chrome`` on
        ``PATH``; None when there is none.
    """
    override = os.environ.get("CHROMIUM")
    if override:
        return override if os.access(override, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """Return Chromium's path, or skip the calling test -- but fail it in CI.

    Returns
    -------
    str
        The executable, from :func:`chromium_path`.

    Raises
    ------
    pytest.skip.Exception
        Outside CI when Chromium is missing.
    pytest.fail.Exception
        In CI (``CI=true``) when Chromium is missing: ``.ci/run`` installs it, so its absence
        is a broken setup, not a reason to skip.
    """
    path = chromium_path()
    if path is not None:
        return path
    reason = (
        "headless Chromium not found: install Debian's chromium package "
        "(apt-get install chromium) or set CHROMIUM=/path/to/chromium"
    )
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so the browser test may not be skipped", pytrace=False)
    pytest.skip(reason)


class _Cdp:
    """A minimal synchronous DevTools-protocol client over one browser websocket."""

    def __init__(self, url: str, timeout: float) -> None:
        import websocket  # websocket-client

        # No Origin header: Chromium refuses websocket origins it was not told to allow.
        self._ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self._timeout = timeout
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._ws.close()

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        import websocket

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self._ws.settimeout(remaining)
        try:
            raw = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as exc:
            raise BrowserError(f"lost the connection to Chromium: {exc}") from exc
        return json.loads(raw)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for its answer, queueing the events that come meanwhile."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout or self._timeout)
        while True:
            reply = self._receive(deadline)
            if reply is None:
                raise BrowserError(f"no answer from Chromium to {method}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], start: int, deadline: float
    ) -> bool:
        """Wait until an event from index ``start`` on matches; False at the deadline."""
        if any(match(event) for event in self.events[start:]):
            return True
        while True:
            event = self._receive(deadline)
            if event is None:
                return False
            if "method" in event:
                self.events.append(event)
                if match(event):
                    return True


class _Chromium:
    """A headless Chromium process with a throw-away profile, driven over CDP."""

    def __init__(self, executable: str, timeout: float) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="ls-chromium-")
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [executable, *_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # its own process group: renderers go with it on a kill
        )
        try:
            self.cdp = _Cdp(self._endpoint(timeout), timeout)
        except BaseException:
            self.close()
            raise

    def _endpoint(self, timeout: float) -> str:
        """The browser websocket URL, from the ``DevToolsActivePort`` file Chromium writes."""
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                lines = port_file.read_text().split()
            except OSError:
                lines = []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        self._log.seek(0)
        tail = self._log.read()[-2000:].decode(errors="replace")
        state = "exited" if self._proc.poll() is not None else f"no DevTools port in {timeout:g} s"
        raise BrowserError(f"Chromium did not start ({state}); its output:\n{tail}")

    def close(self) -> None:
        cdp = getattr(self, "cdp", None)
        if cdp is not None:
            try:
                cdp.send("Browser.close", timeout=5)
            except BrowserError:
                pass
            cdp.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait(timeout=5)
        self._log.close()
        self._profile.cleanup()


# The in-page half of the checks; returns plain JSON. ``opts`` comes from Python.
_PAGE_SCRIPT = """
(async (opts) => {
  const visible = (el) => el.checkVisibility
    ? el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})
    : el.getClientRects().length > 0;
  const short = (s, n) => (s.length > n ? s.slice(0, n) + '...' : s);
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map((img) => {
    if (img.complete) return null;
    img.loading = 'eager';
    return new Promise((done) => {
      img.addEventListener('load', done, {once: true});
      img.addEventListener('error', done, {once: true});
      setTimeout(done, opts.imageWaitMs);
    });
  }));
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done, opts.settleMs)));
  const describe = (img) => {
    const src = img.getAttribute('src') || img.currentSrc || '';
    const alt = img.getAttribute('alt');
    return short(src.startsWith('data:') ? src.slice(0, 40) : src, 200)
      + (alt ? ` (alt="${short(alt, 80)}")` : '');
  };
  const findings = document.getElementById('findings');
  const text = (el) => short((el.innerText || el.textContent || '').trim().replace(/\\s+/g, ' '), 160);
  return {
    brokenImages: imgs.filter((i) => !i.complete || i.naturalWidth === 0).map(describe),
    scrollWidth: Math.max(document.documentElement.scrollWidth,
                          document.body ? document.body.scrollWidth : 0),
    findings: findings === null ? null : {
      hasClass: findings.classList.contains('findings'),
      visible: visible(findings),
      text: (findings.innerText || findings.textContent || '').trim().length,
    },
    navs: Array.from(document.querySelectorAll('nav.ls-nav')).map(
      (nav) => Array.from(nav.querySelectorAll('a[href]')).map((a) => a.getAttribute('href'))),
    links: Array.from(document.querySelectorAll('a[href]')).map((a) => a.getAttribute('href')),
    ids: Array.from(document.querySelectorAll('[id], a[name]')).map((e) => e.id || e.name),
    stderr: Array.from(document.querySelectorAll(opts.stderrSelector)).filter(visible).map(text),
    codeVisible: opts.codeSelector
      ? Array.from(document.querySelectorAll(opts.codeSelector)).filter(visible).map(text)
      : [],
  };
})
"""


class _Ids(HTMLParser):
    """Collects the ``id`` and ``<a name>`` values of an HTML file (link-target check)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value and (key == "id" or (key == "name" and tag == "a")):
                self.ids.add(value)


def _file_ids(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        parser = _Ids()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = parser.ids
    return cache[path]


def _resolve(page: Path, href: str) -> tuple[Path | None, str]:
    """Where a relative ``href`` of ``page`` points: (file or None for this page, fragment)."""
    parts = urlsplit(href)
    fragment = parts.fragment
    if not parts.path:
        return None, fragment
    target = page.parent / unquote(parts.path)
    if parts.path.endswith("/"):
        target = target / "index.html"
    return target.resolve(), fragment


def _has_id(ids: set[str], fragment: str) -> bool:
    """Whether a fragment names an element, as browsers match it: as written or decoded.

    ``#top`` always works: browsers scroll to the top when no element has that id.
    """
    return fragment in ids or unquote(fragment) in ids or fragment.lower() == "top"


def _is_external(href: str) -> bool:
    parts = urlsplit(href)
    return bool(parts.scheme or parts.netloc) or href.startswith("//")


def _link_problems(
    page: Path,
    found: dict[str, Any],
    sequence: Sequence[Path] | None,
    cache: dict[Path, set[str]],
) -> list[str]:
    problems: list[str] = []
    page_ids = set(found["ids"])
    for href in dict.fromkeys(found["links"]):
        if not href.strip() or _is_external(href):
            continue
        target, fragment = _resolve(page, href)
        if target is None:
            if fragment and not _has_id(page_ids, fragment):
                problems.append(f"link {href!r}: no element with id {fragment!r} on this page")
            continue
        if not target.is_file():
            problems.append(f"link {href!r}: {target} does not exist")
        elif fragment and not _has_id(_file_ids(target, cache), fragment):
            problems.append(f"link {href!r}: no element with id {fragment!r} in {target.name}")

    navs = found["navs"]
    if not navs:
        return [*problems, 'no navigation: no <nav class="ls-nav"> element']
    nav_targets = {
        target
        for hrefs in navs
        for href in hrefs
        if not _is_external(href)
        for target in [_resolve(page, href)[0]]
        if target is not None
    }
    if not any(hrefs for hrefs in navs):
        return [*problems, 'navigation: <nav class="ls-nav"> has no links']
    index = (page.parent / "index.html").resolve()
    if page.resolve() == index:
        if not nav_targets - {index}:
            problems.append("navigation: the index page's nav links to no other page")
    elif index not in nav_targets:
        problems.append("navigation: no link to index.html in the nav")
    if sequence:
        order = [p.resolve() for p in sequence]
        if page.resolve() in order:
            at = order.index(page.resolve())
            for label, neighbour in (("previous", at - 1), ("next", at + 1)):
                if 0 <= neighbour < len(order) and order[neighbour] not in nav_targets:
                    name = order[neighbour].name
                    problems.append(f"navigation: no link to the {label} page {name} in the nav")
    return problems


def _event_problems(events: Iterable[dict[str, Any]], allow_remote: bool) -> list[str]:
    problems: list[str] = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception") or {}
            text = exception.get("description") or details.get("text", "")
            where = details.get("url", "")
            line = details.get("lineNumber")
            location = f" ({Path(urlsplit(where).path).name or where}:{line + 1})" if where else ""
            problems.append(f"JavaScript error{location}: {text.splitlines()[0] if text else ''}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            args = params.get("args", [])
            text = " ".join(
                str(a.get("value", a.get("description", a.get("type", "")))) for a in args
            )
            problems.append(f"console.{params['type']}: {text[:300]}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") != "error":
                continue
            url = entry.get("url", "")
            if allow_remote and url.lower().startswith(_REMOTE_SCHEMES):
                continue
            problems.append(f"browser error ({entry.get('source')}): {entry.get('text')} {url}")
    return problems


def _check_one(
    cdp: _Cdp,
    page: Path,
    *,
    timeout: float,
    max_width: int,
    code_selector: str | None,
    allow_remote: bool,
    sequence: Sequence[Path] | None,
    cache: dict[Path, set[str]],
) -> list[str]:
    if not page.is_file():
        return [f"{page} does not exist"]
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = None
    try:
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            cdp.send(f"{domain}.enable", session=session)
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": VIEWPORT_WIDTH,
                "height": VIEWPORT_HEIGHT,
                "deviceScaleFactor": 1,
                "mobile": False,
            },
            session=session,
        )
        start = len(cdp.events)
        navigation = cdp.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        if navigation.get("errorText"):
            return [f"page did not load: {navigation['errorText']}"]
        deadline = time.monotonic() + timeout
        loaded = cdp.wait_for(
            lambda e: e.get("sessionId") == session and e["method"] == "Page.loadEventFired",
            start,
            deadline,
        )
        if not loaded:
            return [f"page did not finish loading in {timeout:g} s"]
        options = {
            "imageWaitMs": 2000,
            "settleMs": 50,
            "stderrSelector": f"{STDERR_SELECTOR}, {PAPERMILL_ERROR_SELECTOR}",
            "codeSelector": code_selector,
        }
        reply = cdp.send(
            "Runtime.evaluate",
            {
                "expression": f"({_PAGE_SCRIPT})({json.dumps(options)})",
                "awaitPromise": True,
                "returnByValue": True,
            },
            session=session,
            timeout=timeout,
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"the page check script failed on {page}: {reply}")
        found = reply["result"]["value"]
        problems = _event_problems(
            (e for e in cdp.events[start:] if e.get("sessionId") == session), allow_remote
        )
    finally:
        try:
            cdp.send("Target.closeTarget", {"targetId": target})
        except BrowserError:
            pass  # the browser is gone; the error that got us here tells why
        cdp.events = [e for e in cdp.events if e.get("sessionId") != session]

    problems += [f"image did not load: {img}" for img in found["brokenImages"]]
    if found["scrollWidth"] > max_width:
        problems.append(
            f"page is {found['scrollWidth']} px wide (more than {max_width} px) "
            f"at a {VIEWPORT_WIDTH} px wide window"
        )
    findings = found["findings"]
    if findings is None:
        problems.append('no findings box: no element with id="findings"')
    else:
        if not findings["hasClass"]:
            problems.append('findings box: id="findings" lacks class "findings"')
        if not findings["text"]:
            problems.append("findings box is empty")
        elif not findings["visible"]:
            problems.append("findings box is not visible")
    problems += [f"visible stderr/error output: {text!r}" for text in found["stderr"]]
    problems += [f"code input visible (code_hidden=True): {t!r}" for t in found["codeVisible"]]
    problems += _link_problems(page, found, sequence, cache)
    return problems


def check_pages(
    paths: Sequence[Path],
    *,
    chromium: str | None = None,
    max_width: int = MAX_WIDTH,
    code_hidden: bool = False,
    code_selector: str = CODE_INPUT_SELECTOR,
    sequence: Sequence[Path] | None = None,
    allow_remote: bool = True,
    timeout: float = 30.0,
) -> dict[Path, list[str]]:
    """Open each page in one headless Chromium and list what breaks the page contract.

    Parameters
    ----------
    paths
        HTML files to check.
    chromium
        The browser executable; default :func:`chromium_path`.
    max_width
        The widest page allowed, in CSS pixels, at a 1400 px wide window.
    code_hidden
        Also require that no code input area (``code_selector``) is visible.
    code_selector
        CSS selector of the code input areas, for ``code_hidden``.
    sequence
        The pages in reading order; when given, each page's nav must link to its neighbours.
    allow_remote
        Ignore failed loads of remote (``http:``/``https:``) resources; these are never
        fetched. With False, each one is a problem.
    timeout
        Seconds to wait for a page's ``load`` event (and for the browser to start).

    Returns
    -------
    dict[Path, list[str]]
        For each path, in order, its problems; an empty list means the page is fine.

    Raises
    ------
    BrowserError
        When no browser is found, it does not start, or it stops answering.
    """
    executable = chromium or chromium_path()
    if executable is None:
        raise BrowserError("no Chromium found (see chromium_path)")
    results: dict[Path, list[str]] = {}
    cache: dict[Path, set[str]] = {}
    browser = _Chromium(executable, timeout)
    try:
        for page in paths:
            results[page] = _check_one(
                browser.cdp,
                Path(page),
                timeout=timeout,
                max_width=max_width,
                code_selector=code_selector if code_hidden else None,
                allow_remote=allow_remote,
                sequence=sequence,
                cache=cache,
            )
    finally:
        browser.close()
    return results
