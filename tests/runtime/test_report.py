"""The catalogue report (runtime/report.py, `samplecnn report`): real results of the default
model on real clips, read back from JSON Lines, CSV and Parquet; bad files; and the page in a
real headless Chromium (skipped, with the reason, when Chromium cannot start)."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.report import write_report
from samplecnn.runtime.report_data import ReportError, read_results

pytest.importorskip("matplotlib", reason="the report draws with matplotlib (pip install 'samplecnn[plot]')")

SECTIONS = ["summary", "failures", "tags", "durations", "map", "songs"]
VOID = {"meta", "img", "input", "br", "hr", "link", "col", "area", "base", "wbr", "source", "track", "embed"}


class PageCheck(HTMLParser):
    """Strict-enough HTML check: every element closed in order; collects ids and URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.urls: list[str] = []
        self.problems: list[str] = []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        self.urls += [attrs[a] for a in ("src", "href") if a in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def check_page(path: Path) -> PageCheck:
    page = PageCheck()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.doctype and not page.problems and not page.stack, (page.problems, page.stack)
    assert all(u.startswith("data:image/png;base64,") for u in page.urls), [u[:40] for u in page.urls if not u.startswith("data:")]
    return page


def songs_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="songs-data">') + len('<script type="application/json" id="songs-data">')
    return json.loads(text[start : text.index("</script>", start)].replace("<\\/", "</"))


@pytest.fixture(scope="module")
def results(tmp_path_factory, music_files):
    """Real `samplecnn infer` outputs (default model, int8, onnxruntime): JSONL and CSV with
    embeddings, of 4 real clips and one missing file."""
    root = tmp_path_factory.mktemp("report")
    songs = [str(p) for p in music_files.values()] + [str(root / "missing.ogg")]
    out = {}
    for ext in ("jsonl", "csv"):
        out[ext] = root / f"tags.{ext}"
        run = CliRunner().invoke(app, ["infer", "--backend", "ort", "--precision", "int8", "--max-segments", "6", "--embeddings", "--out", str(out[ext]), *songs])
        assert run.exit_code == 1 and "missing.ogg" in run.output, run.output
    return out


def report(*args) -> tuple[int, str]:
    run = CliRunner().invoke(app, ["report", *map(str, args)])
    assert run.exception is None or isinstance(run.exception, SystemExit), run.exception  # never a traceback
    return run.exit_code, run.output


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_report_from_infer_results_has_every_section(results, ext, tmp_path, music_files):
    out = tmp_path / "report.html"
    code, output = report(results[ext], "--out", out)
    assert code == 0, output
    assert f"wrote {out}: 4 songs, 0 failures" in output
    page = check_page(out)
    assert [i for i in page.ids if i in SECTIONS] == SECTIONS
    data = songs_data(out)
    assert sorted(data["path"]) == sorted(str(p) for p in music_files.values())
    first = json.loads(results["jsonl"].read_text().splitlines()[0])
    assert list(data["heads"]) == list(first["scores"]) and len(data["atypical"]) == 4  # every head, in order
    for head, scores in first["scores"].items():
        assert data["heads"][head]["labels"] == list(scores)
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # readable like any file the user writes


def test_jsonl_and_csv_read_the_same(results):
    a, b = read_results([results["jsonl"]]), read_results([results["csv"]])
    assert a.paths == b.paths and a.durations.tolist() == pytest.approx(b.durations.tolist(), abs=1e-3)
    for head in a.heads:
        assert a.heads[head].labels == b.heads[head].labels
        assert a.heads[head].scores == pytest.approx(b.heads[head].scores, abs=1e-5)
        assert (a.heads[head].top_index[:, 0] == b.heads[head].top_index[:, 0]).all()
    from samplecnn.runtime.bundle import Bundle
    from samplecnn.runtime.tagger import default_bundle_path

    # The default model's embedding: 960 backbone levels + the 384-d spectral level.
    assert a.embeddings.shape == b.embeddings.shape == (4, Bundle.load(default_bundle_path()).embedding_width) == (4, 1344)
    assert a.embeddings == pytest.approx(b.embeddings, abs=1e-4)


def test_catalogue_parquet_with_an_errors_table(results, tmp_path):
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (pip install pyarrow)")
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in results["jsonl"].read_text().splitlines()]
    columns: dict = {"path": [r["path"] for r in rows], "duration": [r["duration"] for r in rows]}
    for scale in rows[0]["n_segments"]:
        columns[f"n_segments:{scale}"] = pa.array([r["n_segments"][scale] for r in rows], pa.int32())
    for head, scores in rows[0]["scores"].items():
        columns[f"top_{head}"] = [";".join(label for label, _ in r["top"][head]) for r in rows]
        for label in scores:
            columns[f"{head}:{label}"] = pa.array([r["scores"][head][label] for r in rows], pa.float32())
    flat = pa.array([v for r in rows for v in r["embedding"]], pa.float32())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, len(rows[0]["embedding"]))
    job = tmp_path / "catalogue"
    (job / "songs").mkdir(parents=True)
    (job / "errors").mkdir()
    pq.write_table(pa.table(columns), job / "songs" / "part-a-00000.parquet")
    pq.write_table(pa.table({"path": ["x/missing.ogg", "x/broken.mp3"], "reason": ["no such file", "decode failed: truncated"]}), job / "errors" / "part-a-00000.parquet")
    (job / "catalogue.json").write_text("{}")
    out = tmp_path / "catalogue.html"
    code, output = report(job, "--out", out)
    assert code == 0, output
    assert "4 songs, 2 failures" in output
    check_page(out)
    text = out.read_text()
    assert "x/broken.mp3" in text and "decode failed: truncated" in text and 'id="map"' in text
    parquet, jsonl = read_results([job]), read_results([results["jsonl"]])
    assert parquet.paths == jsonl.paths and list(parquet.heads) == list(jsonl.heads)  # no "n_segments" head
    assert parquet.heads["backbone"].scores == pytest.approx(jsonl.heads["backbone"].scores, abs=1e-6)


def test_top_tags_only_and_flat_jsonl(tmp_path):
    rows = [
        {"path": "a.mp3", "duration": 30.0, "top_tags": ["jazz", "calm"], "top_scores_tags": [0.9, 0.4]},
        {"path": "b.mp3", "duration": 200.0, "top_tags": ["rock"], "top_scores_tags": [0.7]},
        {"path": "c.mp3", "error": "not audio"},
    ]
    src = tmp_path / "flat.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_results([src])
    assert got.paths == ["a.mp3", "b.mp3"] and got.failures == [("c.mp3", "not audio")]
    tags = got.heads["tags"]
    assert tags.scores is None and tags.labels == ["jazz", "calm", "rock"] and tags.top_score[0, :2].tolist() == pytest.approx([0.9, 0.4])
    out = tmp_path / "r.html"
    write_report([src], out)
    page = check_page(out)
    assert "map" not in page.ids and "tags (3 labels, top tags only)" in out.read_text()


def test_truncated_and_foreign_rows_are_skipped_and_said(results, tmp_path):
    lines = results["jsonl"].read_text().splitlines(keepends=True)
    foreign = json.loads(lines[0])
    foreign["scores"] = {"backbone": {"brass": 0.1, "calm": 0.2}}
    other_labels = json.loads(lines[1])
    other_labels["scores"]["quadrant"] = {"happy": 0.5, "sad": 0.5}
    bad = tmp_path / "killed.jsonl"
    bad.write_text("".join(lines[:2]) + json.dumps(foreign) + "\n" + json.dumps(other_labels) + "\nnot json at all\n" + lines[2][: len(lines[2]) // 2])
    out = tmp_path / "r.html"
    code, output = report(bad, "--out", out)
    assert code == 1, output
    assert "2 songs" in output and "1 a last line cut short (a killed run?)" in output
    assert "1 heads ['backbone'] differ from the first rows'" in output and "labels differ" in output and "1 lines that are not valid JSON" in output
    check_page(out)
    assert 'id="skipped"' in out.read_text() and "a killed run?" in out.read_text()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jsonl", "", "is empty: no rows"),
        ("nopath.csv", "song,duration\na.mp3,3\n", "no 'path' column; the columns are \\['song', 'duration'\\]"),
        ("garbage.jsonl", "\x00\x01garbage\n{{{\n", "no usable rows \\(2 lines that are not valid JSON\\)"),
        ("half.jsonl", '{"path": "a.mp3", "dur', "no usable rows \\(1 a last line cut short"),
        ("results.txt", "path\n", "unknown extension '.txt'; results files end in .jsonl"),
    ],
)
def test_unusable_files_are_a_clear_error_with_exit_2(tmp_path, name, content, message):
    src = tmp_path / name
    src.write_text(content)
    out = tmp_path / "r.html"
    code, output = report(src, "--out", out)
    assert code == 2 and output.startswith("error: ")
    import re

    assert re.search(message, output), output
    assert not out.exists()
    with pytest.raises(ReportError, match=message):
        read_results([src])


def test_missing_file_and_folder_as_out(tmp_path, results):
    code, output = report(tmp_path / "nope.jsonl", "--out", tmp_path / "r.html")
    assert code == 2 and "no such file" in output
    code, output = report(results["jsonl"], "--out", tmp_path)
    assert code == 2 and "is a folder; give a file name" in output


def test_scores_without_tags_still_report_durations(tmp_path):
    src = tmp_path / "paths.csv"
    src.write_text("path,duration\na.mp3,30.5\nb.mp3,\n")
    out = tmp_path / "r.html"
    code, output = report(src, "--out", out)
    assert code == 0, output
    text = out.read_text()
    assert "none: no tags in the file" in text and "1 songs without a duration" in text


# --- a real headless browser -----------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-pipe",
]


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3 in, fd 4 out:
    NUL-terminated JSON), so no WebSocket client or browser-automation package is needed."""

    def __init__(self, binary: str, profile: str, timeout: float = 60.0) -> None:
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'  # bash: dash takes fds 0-9 only
        self.proc = subprocess.Popen(
            ["bash", "-c", script, binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.timeout, self.buffer, self.next_id, self.events = timeout, b"", 0, []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP, failed loads) so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                out.append(str(details.get("exception", {}).get("description") or details.get("text"))[:300])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:300])
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text", "")[:300])
        return out

    def close(self) -> str:
        try:
            if self.proc.poll() is None:
                os.write(self.to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)
        return self.proc.stderr.read().decode(errors="replace")[-2000:]


def chromium_binary() -> str | None:
    return next((b for b in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if b), None)


@pytest.fixture
def browser(tmp_path):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it when run as root)")
    chrome = Chromium(binary, tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path))
    try:
        target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    except (OSError, EOFError, TimeoutError, RuntimeError) as exc:
        log = chrome.close()
        pytest.skip(f"Chromium ({binary}) could not start: {exc}; its log ends: {log[-400:]}")
    for domain in ("Page", "Runtime", "Log"):
        chrome.send(f"{domain}.enable", session=session)
    yield chrome, session
    chrome.close()


def open_page(chrome: Chromium, session: str, url: str, width: int = 1280, height: int = 900) -> None:
    chrome.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
    chrome.events = [e for e in chrome.events if e.get("method") != "Page.loadEventFired"]  # about:blank's
    chrome.send("Page.navigate", {"url": url}, session)
    chrome.wait_for("Page.loadEventFired")
    deadline = time.monotonic() + chrome.timeout
    while evaluate(chrome, session, "document.readyState + ' ' + location.href") != f"complete {url}":
        if time.monotonic() > deadline:
            raise TimeoutError(f"Chromium did not finish loading {url}")
        time.sleep(0.1)


def evaluate(chrome: Chromium, session: str, expression: str):
    result = chrome.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    assert "exceptionDetails" not in result, result
    return result["result"].get("value")


def screenshot(chrome: Chromium, session: str, path: Path, height: int | None = None) -> Path:
    full = height or int(evaluate(chrome, session, "document.documentElement.scrollHeight"))
    params = {"format": "png", "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": 1280, "height": full, "scale": 1}}
    path.write_bytes(base64.b64decode(chrome.send("Page.captureScreenshot", params, session)["data"]))
    return path


def test_page_loads_in_chromium_without_errors_sorts_filters_and_screenshots(browser, results, tmp_path):
    chrome, session = browser
    out = tmp_path / "report.html"
    assert report(results["jsonl"], "--out", out)[0] == 0
    open_page(chrome, session, out.as_uri())
    assert chrome.errors() == []
    cells = "[...document.querySelectorAll('#songs-body tr')].map(r => r.cells[%d].textContent)"
    assert evaluate(chrome, session, "document.querySelectorAll('#songs-body tr').length") == 4
    heads = list(json.loads(results["jsonl"].read_text().splitlines()[0])["scores"])
    headers = evaluate(chrome, session, "[...document.querySelectorAll('#songs-head th')].map(t => t.textContent)")
    assert headers == ["path", "duration (s)", *[f"{h}: top tags" for h in heads], "atypical"]
    evaluate(chrome, session, "document.querySelector('#songs-head th[data-key=duration]').click()")
    durations = [float(v) for v in evaluate(chrome, session, cells % 1)]
    assert durations == sorted(durations, reverse=True)  # numbers sort largest first
    evaluate(chrome, session, "document.querySelector('#songs-head th[data-key=duration]').click()")
    assert [float(v) for v in evaluate(chrome, session, cells % 1)] == sorted(durations)
    evaluate(chrome, session, "const f = document.getElementById('filter'); f.value = 'trumpet'; f.dispatchEvent(new Event('input'))")
    assert len(evaluate(chrome, session, cells % 0)) == 2 and "filtered from 4" in evaluate(chrome, session, "document.getElementById('count').textContent")
    loaded = evaluate(chrome, session, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert loaded and evaluate(chrome, session, "document.images.length") == 2 * len(heads) + 2  # per head 2, durations, map
    shot = screenshot(chrome, session, tmp_path / "report.png", height=1600)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", shot.read_bytes()[16:24]) == (1280, 1600)
    assert chrome.errors() == []


def test_a_broken_page_is_caught(browser, tmp_path):
    """The check itself works: a script error and a network request blocked by the CSP show up."""
    chrome, session = browser
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'\">"
                    "</head><body><img src=\"http://127.0.0.1:9/x.png\"><script>undefinedFunction()</script></body></html>")
    open_page(chrome, session, page.as_uri())
    errors = chrome.errors()
    assert any("undefinedFunction" in e for e in errors) and any("Content Security Policy" in e for e in errors), errors
