"""Every bad-input case is reported with path and reason while the other songs get results;
the CLI exits non-zero and an existing output file keeps its rows."""

from __future__ import annotations

import json
import os

import pytest
import soundfile as sf
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.tagger import Tagger

REASONS = {
    "corrupt": "not a readable audio file",
    "empty": "not a readable audio file",
    "truncated_mp3": "truncated or corrupt",
    "text_as_wav": "not a readable audio file",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "zero_length": "zero-length",
    "silent": "silent",
    "unreadable": "permission denied",
    "missing": "no such file",
}


def cases(broken_files):
    names = list(REASONS)
    if os.access(broken_files["unreadable"], os.R_OK):  # root ignores chmod 0
        names.remove("unreadable")
    return names


@pytest.mark.parametrize("case", list(REASONS))
def test_each_bad_file_is_reported_and_the_others_still_tagged(case, broken_files, tiny_bundle, music_files):
    if case == "unreadable" and os.access(broken_files["unreadable"], os.R_OK):
        pytest.skip("running as root: chmod 0 does not lock root out")
    good = str(music_files["sorohanro_solo_trumpet_06"])
    bad = str(broken_files[case])
    with Tagger(tiny_bundle) as tagger:
        results = list(tagger.tag([good, bad, good]))
    assert [r.path for r in results] == [good, bad, good]
    assert results[0].ok and results[2].ok
    assert not results[1].ok
    assert REASONS[case] in results[1].error


def test_cli_reports_failures_keeps_existing_rows_and_exits_1(broken_files, tiny_bundle, music_files, tmp_path):
    out = tmp_path / "tags.jsonl"
    good = str(music_files["sorohanro_solo_trumpet_06"])
    runner = CliRunner()
    first = runner.invoke(app, ["infer", "--bundle", str(tiny_bundle), "--out", str(out), good])
    assert first.exit_code == 0, first.output
    before = out.read_text()
    assert len(before.splitlines()) == 1

    names = cases(broken_files)
    other = str(music_files["kevin_macleod_vibe_ace"])
    args = ["infer", "--bundle", str(tiny_bundle), "--out", str(out), "--resume", good, *[str(broken_files[n]) for n in names], other]
    second = runner.invoke(app, args)
    assert second.exit_code == 1, second.output
    for name in names:
        assert f"FAILED {broken_files[name]}: " in second.output
        assert REASONS[name] in second.output
    assert f"tagged 1 of {len(names) + 1} songs ({len(names)} failed)" in second.output
    after = out.read_text()
    assert after.startswith(before)  # nothing already written is lost
    rows = [json.loads(line) for line in after.splitlines()]
    assert [r["path"] for r in rows] == [good, other]


def test_cli_without_resume_refuses_to_touch_an_existing_output(tiny_bundle, music_files, tmp_path):
    out = tmp_path / "tags.csv"
    out.write_text("path,duration\nsomething.wav,1.0\n")
    result = CliRunner().invoke(app, ["infer", "--bundle", str(tiny_bundle), "--out", str(out), str(music_files["sorohanro_solo_trumpet_06"])])
    assert result.exit_code == 2
    assert "--resume" in result.output and "--overwrite" in result.output
    assert out.read_text() == "path,duration\nsomething.wav,1.0\n"


def test_a_run_that_only_fails_writes_nothing_and_exits_1(broken_files, tiny_bundle, tmp_path):
    out = tmp_path / "tags.jsonl"
    result = CliRunner().invoke(app, ["infer", "--bundle", str(tiny_bundle), "--out", str(out), str(broken_files["silent"])])
    assert result.exit_code == 1
    assert out.read_text() == ""


def test_mp3_whose_header_overstates_its_length_is_still_tagged(tmp_path, tiny_bundle, music_files):
    # Cut the last ~1% of an MP3: the header still declares the full length (within the
    # truncation tolerance), so segments planned past the real end must be re-anchored.
    audio, rate = sf.read(str(music_files["kevin_macleod_vibe_ace"]), dtype="float32", frames=22050 * 20)
    full = tmp_path / "full.mp3"
    sf.write(str(full), audio, rate)
    data = full.read_bytes()
    short = tmp_path / "short.mp3"
    short.write_bytes(data[: int(len(data) * 0.99)])
    declared = sf.info(str(short)).frames
    with Tagger(tiny_bundle) as tagger:
        (result,) = tagger.features([short])
    assert result.ok, result.error
    decoded = round(result.duration * 22050)
    assert decoded < declared
    for scale in tagger.bundle.scales:
        assert 1 <= result.n_segments[scale.name] <= -(-declared // scale.segment_samples)
