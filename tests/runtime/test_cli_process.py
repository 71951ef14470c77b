"""`samplecnn infer` as a whole process: what reaches stdout, stderr and --out, and the exit code,
now that the process ends without the interpreter's teardown (cli.main), unless a profiler
or tracer needs the normal exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CLI = [sys.executable, "-c", "import sys; from samplecnn.cli import main; sys.argv[0] = 'samplecnn'; main()"]


def _run(command, tmp_path, timeout=300):
    env = {**os.environ, "SAMPLECNN_ONNXRUNTIME_CACHE": str(tmp_path / "cache")}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def test_infer_delivers_every_row_and_the_exit_code_through_pipes(tiny_bundle, music_files, broken_files, tmp_path):
    good = [str(music_files["sorohanro_solo_trumpet_06"]), str(music_files["kevin_macleod_vibe_ace"])]
    songs = [good[0], str(broken_files["corrupt"]), good[1]]
    table = _run(CLI + ["infer", "--bundle", str(tiny_bundle), "--no-progress", *songs], tmp_path)
    assert table.returncode == 1, table.stderr
    assert sum(line.startswith(("...", "/")) or ".ogg" in line for line in table.stdout.splitlines()) >= 2
    for path in good:
        assert path[-30:] in table.stdout
    assert "FAILED" in table.stderr and "corrupt.wav" in table.stderr
    assert "tagged 2 of 3 songs" in table.stderr  # the summary, the last line, was flushed

    out = tmp_path / "tags.jsonl"
    written = _run(CLI + ["infer", "--bundle", str(tiny_bundle), "--no-progress", "--out", str(out), *songs], tmp_path)
    assert written.returncode == 1, written.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == good and all(r["top"] for r in rows)

    bad_option = _run(CLI + ["infer", "--bundle", str(tiny_bundle), "--top-k", "0", good[0]], tmp_path)
    assert bad_option.returncode == 2 and "top_k" in bad_option.stderr


def test_infer_skips_teardown_but_runs_atexit_handlers_and_not_under_a_profiler(tiny_bundle, music_files, tmp_path):
    # A wrapper's atexit handler still runs (benchmarks/pipeline_profile.py reports VmHWM from
    # one); an object left in __main__ is not torn down after `infer` (os._exit), but is after
    # any other command (normal exit).
    song = str(music_files["sorohanro_solo_trumpet_06"])
    at_exit, torn_down = tmp_path / "atexit-ran", tmp_path / "teardown-ran"
    wrapper = [sys.executable, "-c",
               f"import atexit, sys\natexit.register(lambda: open({str(at_exit)!r}, 'w').close())\n"
               f"class Witness:\n    def __del__(self, open=open): open({str(torn_down)!r}, 'w').close()\n"
               "witness = Witness()\nfrom samplecnn.cli import main\nsys.argv[0] = 'samplecnn'\nmain()\n"]
    done = _run(wrapper + ["infer", "--bundle", str(tiny_bundle), "--no-progress", song], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tagged 1 of 1 songs" in done.stderr
    assert at_exit.exists() and not torn_down.exists()
    at_exit.unlink()
    other = _run(wrapper + ["summary", "3^9"], tmp_path)
    assert other.returncode == 0 and at_exit.exists() and torn_down.exists()

    profile = tmp_path / "infer.prof"
    profiled = _run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "samplecnn.cli",
                     "infer", "--bundle", str(tiny_bundle), "--no-progress", song], tmp_path)
    assert profiled.returncode == 0, profiled.stderr
    assert profile.stat().st_size > 0  # cProfile wrote its stats: the normal exit ran
