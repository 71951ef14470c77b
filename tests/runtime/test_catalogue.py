"""`samplecnn catalogue` on a real local Ray (2 CPUs), real clips, a broken file and the real model.

One Ray per module (started here, joined by the CLI subprocesses through its address); songs are
cut to 2 segments per scale to keep the module fast on 2 busy cores.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'samplecnn[ray]')")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install 'samplecnn[ray]')")

from samplecnn.runtime.catalogue import CatalogueError, catalogue, plan_pool  # noqa: E402
from samplecnn.runtime.catalogue_store import JOB_FILE  # noqa: E402
from samplecnn.runtime.tagger import DEFAULT_MODEL, Tagger  # noqa: E402

MAX_SEGMENTS = 2
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray with 2 CPUs for this module; its GCS address for CLI subprocesses."""
    saved = os.environ.get("RAY_AUTH_MODE")
    # Asks for loopback; Ray keeps it only when imported in its one-machine mode (ray#26293),
    # which test_a_one_machine_job_starts_its_own_ray_on_loopback checks for the CLI's own Ray.
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", _node_ip_address="127.0.0.1")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)  # ray.init turns token auth on for this process
        else:
            os.environ["RAY_AUTH_MODE"] = saved


@pytest.fixture(scope="module")
def song_dir(tmp_path_factory, data_dir) -> Path:
    """The real clips of tests/data and a text file posing as audio."""
    root = tmp_path_factory.mktemp("songs")
    for clip in sorted(data_dir.glob("*.ogg")):
        shutil.copy(clip, root / clip.name)
    (root / "broken.wav").write_text("these are liner notes, not audio\n" * 20)
    return root


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samplecnn.cli", *args], capture_output=True, text=True, timeout=timeout)


def read_rows(out: Path, table: str = "songs"):
    return pq.read_table(out / table).to_pylist()


def score_columns(row: dict) -> dict[str, float]:
    return {k: v for k, v in row.items() if ":" in k and not k.startswith("n_segments:")}


def test_pool_leaves_a_cpu_for_reading():
    assert (plan_pool(2).actors, plan_pool(2).threads) == (1, 1)
    assert (plan_pool(16).actors, plan_pool(16, threads=2).actors) == (15, 7)
    with pytest.raises(CatalogueError, match="44687"):
        plan_pool(2, actors=2)
    with pytest.raises(CatalogueError, match="at least 3"):
        plan_pool(2, threads=2)
    # actors reserving less than their threads: a full compute pool that still leaves a CPU of reservations
    half = plan_pool(2, actor_cpus=0.5)
    assert (half.actors, half.threads, half.reserved) == (2, 1, 0.5)  # no more threads than CPUs by default
    assert "0.5 Ray CPU(s) reserved each, on 2 CPUs (1 left" in half.describe()
    with pytest.raises(CatalogueError, match="44687"):
        plan_pool(2, actors=3, actor_cpus=0.5)
    with pytest.raises(CatalogueError, match="--actor-cpus 0"):
        plan_pool(2, actor_cpus=0)


def test_folder_with_a_broken_file_matches_tagger_and_infer(ray_address, song_dir, tmp_path):
    # a CSV list adds one clip as a file:// URI (fetched inside the actor) and a missing song
    listed = tmp_path / "list.csv"
    uri = (song_dir / "sorohanro_solo_trumpet_06.ogg").as_uri()
    listed.write_text(f"path,title\n{uri},trumpet by URI\nno_such_song.ogg,missing\n")
    out, log = tmp_path / "out", io.StringIO()
    code = catalogue([str(song_dir), str(listed)], out, max_segments=MAX_SEGMENTS, embeddings=True, stderr=log)
    assert code == 1, log.getvalue()  # some songs failed, the rest are tagged
    assert "pool: 1 actor(s) x 1 thread(s) on 2 CPUs (1 left for reading and writing)" in log.getvalue()
    last = json.loads((out / JOB_FILE).read_text())["last_run"]
    assert (last["actors"], last["threads"], last["cluster_cpus"], last["completed"]) == (1, 1, 2.0, True)

    errors = {r["path"]: r["reason"] for r in read_rows(out, "errors")}
    assert set(errors) == {str(song_dir / "broken.wav"), str(tmp_path / "no_such_song.ogg")}
    assert "not a readable audio file" in errors[str(song_dir / "broken.wav")]
    assert "no such file" in errors[str(tmp_path / "no_such_song.ogg")]

    rows = {r["path"]: r for r in read_rows(out)}
    local = sorted(str(p) for p in song_dir.glob("*.ogg"))
    assert sorted(rows) == sorted(local + [uri])
    with Tagger(max_segments=MAX_SEGMENTS) as tagger:
        expected = {r.path: r for r in tagger.tag(local, embeddings=True)}
    expected[uri] = expected[str(song_dir / "sorohanro_solo_trumpet_06.ogg")]
    jsonl = tmp_path / "infer.jsonl"
    done = cli("infer", *local, "--out", str(jsonl), "--max-segments", str(MAX_SEGMENTS))
    assert done.returncode == 0, done.stderr
    from_infer = {row["path"]: row for row in map(json.loads, jsonl.read_text().splitlines())}
    for path, row in rows.items():
        want = expected[path]
        assert row["duration"] == pytest.approx(want.duration, abs=TOLERANCE)
        assert {k.split(":", 1)[1]: v for k, v in row.items() if k.startswith("n_segments:")} == want.n_segments
        flat = {f"{head}:{label}": s for head, scores in want.scores.items() for label, s in scores.items()}
        got = score_columns(row)
        assert got.keys() == flat.keys()
        np.testing.assert_allclose([got[k] for k in flat], list(flat.values()), rtol=0, atol=TOLERANCE, err_msg=path)
        for head, pairs in want.top.items():
            assert row[f"top_{head}"] == ";".join(label for label, _ in pairs)
        np.testing.assert_allclose(row["embedding"], want.embedding, rtol=0, atol=TOLERANCE)
        if not path.startswith("file://"):
            infer_flat = {f"{h}:{label}": s for h, d in from_infer[path]["scores"].items() for label, s in d.items()}
            np.testing.assert_allclose([got[k] for k in infer_flat], list(infer_flat.values()), rtol=0, atol=TOLERANCE, err_msg=path)


def test_killed_job_resumes_and_writes_every_song_once(ray_address, song_dir, tmp_path, data_dir):
    songs = tmp_path / "songs"
    songs.mkdir()
    for i in range(6):  # 12 distinct paths of the two 5 s real clips
        for clip in sorted(data_dir.glob("sorohanro_*.ogg")):
            shutil.copy(clip, songs / f"{i}_{clip.name}")
    out = tmp_path / "out"
    args = [str(songs), "--out", str(out), "--address", ray_address, "--max-segments", str(MAX_SEGMENTS),
            "--songs-per-batch", "1", "--rows-per-file", "1", "--no-progress"]  # fmt: skip
    job = subprocess.Popen([sys.executable, "-m", "samplecnn.cli", "catalogue", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while job.poll() is None and not list((out / "songs").glob("part-*.parquet")):
            time.sleep(0.05)
        killed = job.poll() is None
        job.send_signal(signal.SIGKILL)
    finally:
        job.wait(timeout=60)
    parts = sorted((out / "songs").glob("part-*.parquet"))
    assert parts, job.stderr.read()
    if not killed or len(parts) == 12:  # finished before the kill: make the output partial by hand
        for part in parts[len(parts) // 2 :]:
            part.unlink()
    before = {r["path"] for r in read_rows(out)}
    assert 0 < len(before) < 12

    refused = cli("catalogue", *args)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    log = io.StringIO()  # the resumed run in this process (its Ray is already imported: faster)
    code = catalogue([str(songs)], out, resume=True, max_segments=MAX_SEGMENTS, songs_per_batch=1, rows_per_file=1, stderr=log)
    assert code == 0, log.getvalue()
    assert f"resume: {len(before)} songs already in" in log.getvalue()
    paths = [r["path"] for r in read_rows(out)]
    assert sorted(paths) == sorted(str(p) for p in songs.glob("*.ogg"))  # every song exactly once
    again = cli("catalogue", *args, "--resume")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert len(read_rows(out)) == 12


def test_a_one_machine_job_starts_its_own_ray_on_loopback(song_dir, tmp_path):
    """No --address: the job starts a local Ray in Ray's one-machine mode, so its GCS (and
    every node address) is on 127.0.0.1, not the machine's interface address."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    out = tmp_path / "out"
    song = sorted(song_dir.glob("*.ogg"))[0]
    done = subprocess.run([sys.executable, "-m", "samplecnn.cli", "catalogue", str(song), "--out", str(out), "--max-segments",
                           str(MAX_SEGMENTS), "--no-progress"], capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    last_run = json.loads((out / JOB_FILE).read_text())["last_run"]
    assert last_run["ray_gcs_address"].startswith("127.0.0.1:") and last_run["songs"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_setups_exit_2_before_any_work(ray_address, song_dir, tmp_path):
    tampered = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL, tampered)
    head = next(tampered.glob("head_*.safetensors"))
    head.write_bytes(head.read_bytes()[:-8] + b"\0" * 8)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    other_job = tmp_path / "other_job"
    other_job.mkdir()
    (other_job / JOB_FILE).write_text(json.dumps({"format": "samplecnn-catalogue", "version": 1, "job": {"precision": "int8"}}))
    song = str(song_dir / "sorohanro_solo_trumpet_06.ogg")
    cases = {
        "bad address": (["--address", f"127.0.0.1:{_free_port()}"], "no Ray cluster answers"),
        "malformed address": (["--address", "nowhere"], "expected HOST:PORT"),
        "tampered bundle": (["--bundle", str(tampered)], "failed verification"),
        "foreign folder": (["--out", str(foreign)], "not a catalogue job's"),
        "another job": (["--out", str(other_job)], "holds another job's results"),
        "pool too big": (["--address", ray_address, "--threads", "4"], "needs at least 5"),
    }
    for name, (extra, message) in cases.items():
        args = ["catalogue", song, "--out", str(tmp_path / "new")] + extra
        done = cli(*args)
        assert done.returncode == 2, (name, done.stderr)
        assert message in done.stderr, (name, done.stderr)
    assert not (tmp_path / "new").exists()  # nothing was started or written
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(p.name for p in other_job.iterdir()) == [JOB_FILE]


def test_missing_ray_is_exit_2_naming_the_extra_and_runtime_stays_ray_free(song_dir, tmp_path):
    blocked = (
        "import sys; sys.modules['ray'] = None\n"  # the import fails exactly as when ray is not installed
        "import samplecnn.runtime, samplecnn.runtime.catalogue\n"
        "from samplecnn.cli import app\n"
        f"app(['catalogue', {str(song_dir)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pip install 'samplecnn[ray]'" in done.stderr
    assert not (tmp_path / "out").exists()
    check = "import sys, samplecnn.runtime, samplecnn.runtime.catalogue, samplecnn.runtime.sources; print(sorted(m for m in ('ray', 'torch', 'pyarrow') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-W", "error", "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
