"""The bench's round logic on synthetic per-round figures (no timing): every ratio is taken within
a round and reported as the median of the per-round ratios with its spread; each backbone is
read against the GEMM peak of its own round; bench.json keeps the raw rounds and stays readable
by the README generator."""

from __future__ import annotations

import json

import pytest

from samplecnn.benchmarks import backbones, pipeline_profile, readme_tables, suite
from samplecnn.benchmarks.common import RESULTS, SPREAD_FLAG, paired_ratio, round_order, spread

GFLOP = 1e9


def test_spread_is_median_and_relative_range():
    got = spread([10.0, 12.0, 11.0])
    assert got["median"] == 11.0
    assert got["spread"] == pytest.approx(2 / 11, abs=1e-3)
    assert got["flagged"] is True  # 18% > 10%
    assert got["rounds"] == [10.0, 12.0, 11.0]
    assert spread([10.0, 10.5])["flagged"] is False
    assert SPREAD_FLAG == 0.10


def test_paired_ratio_is_the_median_of_per_round_ratios_not_the_ratio_of_medians():
    # The machine ran at full, half and three-quarter speed in rounds 0..2: A and B slowed down
    # together inside each round, so every per-round ratio is exactly 2.
    a = [100.0, 50.0, 75.0]
    b = [50.0, 25.0, 37.5]
    got = paired_ratio(a, b)
    assert got["median"] == 2.0 and got["spread"] == 0.0 and got["rounds"] == [2.0, 2.0, 2.0]
    # Figures that disagree across rounds: median of (2, 0.5, 2) = 2, although the ratio of
    # the medians would be 20 / 15.
    got = paired_ratio([10.0, 20.0, 30.0], [5.0, 40.0, 15.0])
    assert got["rounds"] == [2.0, 0.5, 2.0] and got["median"] == 2.0
    assert got["spread"] == pytest.approx(0.75) and got["flagged"]


def test_paired_ratio_refuses_rounds_that_do_not_pair():
    assert paired_ratio([1.0, 2.0], [1.0]) is None
    assert paired_ratio([], []) is None
    assert paired_ratio([1.0, None], [1.0, 1.0]) is None
    assert paired_ratio([1.0, 1.0], [1.0, 0.0]) is None


def test_round_order_reverses_every_other_round():
    assert round_order(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert round_order(["a", "b", "c"], 1) == ["c", "b", "a"]
    assert round_order(["a", "b", "c"], 2) == ["a", "b", "c"]


def test_round_plan_puts_each_precisions_peak_next_to_its_engines():
    engines = ("torch eager fp32", "ort fp32 conv2d", "ort int8", "openvino int8")
    plan = backbones.round_plan(engines, [1, 2], lambda threads: threads == 2)
    assert plan == [(2, [("peak", "fp32"), ("engine", "torch eager fp32"), ("engine", "ort fp32 conv2d"),
                         ("peak", "int8"), ("engine", "ort int8"), ("engine", "openvino int8")])]  # no bf16 engine: no bf16 peak
    _, items = plan[0]
    backwards = round_order(items, 1)
    assert backwards.index(("peak", "int8")) == backwards.index(("engine", "ort int8")) + 1  # odd rounds: peak right after its engines


def _child_row(engine: str, ms: float, batch: int = 1, threads: int = 2, best: float | None = None) -> dict:
    return {"engine": engine, "scale": "3^9", "width": 1.0, "threads": threads, "batch": batch, "ms_per_segment": best or ms,
            "ms_per_segment_median": ms, "segments_per_s": round(1e3 / (best or ms), 2), "timed_calls": 5}


def _peak(gflops: float | None, kernel: str = "numpy matmul fp32 2048x2048x2048") -> dict:
    return {"gflops": gflops, "detail": {kernel: gflops} if gflops else {}}


def _backbone_rounds() -> list[dict]:
    """Three rounds in which the whole machine ran at speed 1, 0.5 and 0.8: the GEMM peak and the
    backbones slowed down together (1 GFLOP per segment: GFLOP/s = 1000 / ms)."""
    rounds = []
    for speed in (1.0, 0.5, 0.8):
        rounds.append({
            "peak": {"2": {"fp32": _peak(200.0 * speed), "int8": _peak(1000.0 * speed, "onnxruntime MatMulInteger u8s8 4096^3")}},
            "rows": [_child_row("torch eager fp32", 1e3 / (40.0 * speed)),           # 40 GFLOP/s at full speed
                     _child_row("ort fp32 conv2d", 1e3 / (180.0 * speed), best=1.0),  # 90% of the fp32 peak; one freak fast call
                     _child_row("ort int8", 1e3 / (500.0 * speed))],                  # 50% of the int8 peak
        })
    return rounds


def test_backbone_fraction_of_peak_uses_the_peak_of_its_own_round():
    summary = backbones.summarise(_backbone_rounds(), lambda scale, width: GFLOP)
    rows = {r["engine"]: r for r in summary["rows"]}
    ort = rows["ort fp32 conv2d"]
    assert [x["peak_gflops"] for x in ort["rounds"]] == [200.0, 100.0, 160.0]
    assert [x["fraction_of_peak"] for x in ort["rounds"]] == [0.9, 0.9, 0.9]
    assert ort["fraction_of_peak"] == 0.9 and ort["fraction_of_peak_rounds"]["spread"] == 0.0
    # Against one peak measured in round 0 only (the old way) the slow rounds would read 45% and 72%.
    assert ort["speedup_vs_torch"] == 4.5 and ort["speedup_vs_torch_rounds"]["rounds"] == [4.5, 4.5, 4.5]
    assert rows["ort int8"]["fraction_of_peak"] == 0.5 and rows["ort int8"]["peak_precision"] == "int8"
    # The row's own figure is its median call at the median round, not the freak best call.
    assert ort["ms_per_segment"] == pytest.approx(1e3 / 144.0, abs=1e-3) and ort["ms_per_segment_best"] == 1.0
    assert ort["achieved_gflops"] == pytest.approx(144.0, abs=0.1)
    assert rows["torch eager fp32"]["speedup_vs_torch"] == 1.0
    assert [r["engine"] for r in summary["rows"]] == ["torch eager fp32", "ort fp32 conv2d", "ort int8"]  # ENGINES order


def test_backbone_without_a_peak_of_its_precision_has_no_fraction():
    raw = [{"peak": {"2": {"fp32": _peak(100.0)}}, "rows": [_child_row("openvino bf16", 5.0)]}]
    (row,) = backbones.summarise(raw, lambda scale, width: GFLOP)["rows"]
    assert row["fraction_of_peak"] is None and row["fraction_of_peak_rounds"] is None
    assert row["speedup_vs_torch"] is None  # no torch row to compare with


def test_peak_summary_is_the_median_over_rounds_with_its_spread():
    peaks = backbones.summarise_peaks(_backbone_rounds())
    assert set(peaks) == {"2"}
    p = peaks["2"]
    assert p["fp32_gflops"] == 160.0 and p["int8_gops"] == 800.0 and p["bf16_gflops"] is None
    assert p["rounds"]["fp32"]["rounds"] == [200.0, 100.0, 160.0] and p["rounds"]["fp32"]["flagged"]
    assert p["best_kernel"] == {"fp32": "numpy matmul fp32 2048x2048x2048", "int8": "onnxruntime MatMulInteger u8s8 4096^3"}
    assert "±62%" in "\n".join(backbones.format_peaks(peaks))


def _pipeline_result(wall: float, audio: float = 60.0, songs: int = 2) -> dict:
    return {"wall_s": wall, "passes_wall_s": [wall], "latencies_s": [wall / songs] * songs, "audio_s": audio,
            "top5": {f"song{i}": ["a", "b", "c", "d", "e"] for i in range(songs)}, "segments": {"3^9": 20},
            "failed": [], "description": "synthetic", "peak_rss_mb": 100.0}


def _pipeline_results() -> dict[str, list[dict]]:
    """Three rounds; the machine slowed down in round 1. Each round: torch 6 s at full speed,
    onnxruntime fp32 2 s, int8 1 s, OpenVINO bf16 1 s, OpenVINO int8 0.5 s, musicnn 3 s."""
    base = {"onnxruntime fp32": 2.0, "onnxruntime int8": 1.0, "openvino bf16": 1.0, "openvino int8": 0.5, "torch eager fp32": 6.0, "musicnn": 3.0}
    results = {name: [_pipeline_result(wall / speed) for speed in (1.0, 0.5, 0.9)] for name, wall in base.items()}
    for got in results["musicnn"]:
        got["segments"] = {}  # as compare() records musicnn's rounds
    return results


def test_pipeline_ratios_are_taken_per_round():
    rows, ratios = pipeline_profile.summarise(_pipeline_results(), {"3^9": GFLOP})
    by_name = {r["pipeline"]: r for r in rows}
    fp32 = by_name["onnxruntime fp32"]
    assert fp32["vs_torch"]["rounds"] == [3.0, 3.0, 3.0] and fp32["vs_torch"]["spread"] == 0.0
    assert fp32["vs_musicnn"]["median"] == 1.5
    assert fp32["wall_s_rounds"] == [2.0, 4.0, 2.222]  # the raw per-round figures stay
    assert fp32["x_realtime_rounds"]["flagged"]  # x real time itself swings with the machine
    assert ratios["openvino bf16 / onnxruntime fp32"]["rounds"] == [2.0, 2.0, 2.0]
    assert ratios["openvino int8 / onnxruntime int8"]["median"] == 2.0
    assert ratios["onnxruntime int8 / onnxruntime fp32"]["median"] == 2.0
    assert "openvino fp32 / onnxruntime fp32" not in ratios  # not measured: no ratio
    assert "vs_musicnn" in by_name["openvino int8"] and by_name["musicnn"]["vs_musicnn"]["median"] == 1.0


def test_pipeline_ratio_with_a_missing_round_is_left_out():
    results = _pipeline_results()
    results["musicnn"] = results["musicnn"][:2]  # musicnn failed in the last round
    rows, _ = pipeline_profile.summarise(results, {"3^9": GFLOP})
    assert all("vs_musicnn" not in r for r in rows if r["pipeline"] != "musicnn")


def test_cold_start_ratio_is_per_round():
    times = {pipeline_profile.COLD_WARM: [1.0, 2.0, 1.2], pipeline_profile.COLD_FIRST: [1.2, 2.4, 1.5],
             pipeline_profile.COLD_TORCH: [4.0, 8.0, 4.0]}
    got = pipeline_profile.cold_start_summary(times)
    assert got["ratio_rounds"]["rounds"] == [0.25, 0.25, 0.3] and got["ratio"] == 0.25
    assert got["ratio_first_start_rounds"]["rounds"] == [0.3, 0.3, 0.375] and got["ratio_first_start"] == 0.3
    assert got["median_s"][pipeline_profile.COLD_TORCH] == 4.0 and got["runs_s"] is times


def _suite_result(rounds: int = 3) -> dict:
    results = {k: v[:rounds] for k, v in _pipeline_results().items()}
    rows, ratios = pipeline_profile.summarise(results, {"3^9": GFLOP})
    times = {pipeline_profile.COLD_WARM: [1.0, 2.0, 1.2][:rounds], pipeline_profile.COLD_FIRST: [1.2, 2.4, 1.5][:rounds],
             pipeline_profile.COLD_TORCH: [4.0, 8.0, 4.0][:rounds]}
    block = {"rows": rows, "ratios": ratios, "rounds": rounds, "absent": {}, "flagged": [],
             "top5_agreement_vs_ort_fp32": {"onnxruntime int8": {"mean": 0.95, "min": 0.8, "songs": 2}},
             "cold_start": {"song": "song0", **pipeline_profile.cold_start_summary(times)},
             "peak_rss": [{"bundle": "b", "precision": "fp32", "peak_rss_mb": 150.0, "audio_h": 0.01, "file": "f", "wall_s": 1.0, "x_realtime": 36.0}]}
    summary = backbones.summarise(_backbone_rounds()[:rounds], lambda scale, width: GFLOP)
    machine = {"simd": ["avx512f", "avx512_bf16", "amx_tile", "amx_int8"], "cpu": "synthetic", "cores": 2, "memory_gb": 8.0, "onnxruntime": "x",
               "openvino": "y", "torch": "z", "numpy": "n", "date_utc": "2026-12-01 00:00 UTC"}
    result = {"machine": machine, "backbones": {**summary, "tensorrt": "not available"}, "pipeline": {"speed": block}, "under_load": False}
    result["targets"] = suite.evaluate_targets(result)
    return result


def test_targets_read_the_per_round_ratios():
    targets = {t["target"]: t for t in _suite_result()["targets"]}
    bf16 = targets["pipeline OpenVINO bf16 >= 1.6x onnxruntime fp32 (AVX512-BF16)"]
    assert bf16["measured"] == 2.0 and bf16["met"] is True and "±0% over 3 rounds" in bf16["detail"]
    int8 = targets["pipeline OpenVINO int8 >= 1.5x onnxruntime int8 (AMX)"]
    assert int8["measured"] == 2.0 and int8["met"] is True
    fp32 = targets["backbone fp32 >= 90% of its measured peak"]
    assert fp32["measured"] == 0.9 and fp32["met"] is True
    assert targets["backbone int8 >= 90% of its measured peak"]["met"] is False
    cold = targets["cold start <= 1/3 of a torch process (torch at its best batch)"]
    assert cold["measured"] == 0.25 and cold["met"] is True
    pipeline_spread = targets["every pipeline and cold-start ratio's spread over rounds <= 10%"]
    assert pipeline_spread["met"] is False  # x real time and the cold-start ratio swing with the machine
    assert "flagged" in pipeline_spread["detail"]
    backbone_spread = targets["every backbone (vs peak, vs torch) ratio's spread over rounds <= 10%"]
    assert backbone_spread["measured"] == 0.0 and backbone_spread["met"] is True  # paired: the slow round cancels


def test_a_backbone_above_its_paired_peak_is_not_judged():
    raw = _backbone_rounds()
    for one in raw:
        one["rows"][1]["ms_per_segment_median"] /= 1.5  # 135% of the fp32 GEMMs measured next to it
    result = _suite_result()
    result["backbones"].update(backbones.summarise(raw, lambda scale, width: GFLOP))
    fp32 = next(t for t in suite.evaluate_targets(result) if t["target"].startswith("backbone fp32"))
    assert fp32["met"] is None and fp32["measured"] == 1.35 and "not judged" in fp32["detail"]


def test_a_single_round_has_no_spread_to_judge():
    targets = {t["target"]: t for t in _suite_result(rounds=1)["targets"]}
    for name in ("every pipeline and cold-start ratio's spread over rounds <= 10%", "every backbone (vs peak, vs torch) ratio's spread over rounds <= 10%"):
        assert targets[name]["met"] is None and "single round" in targets[name]["detail"]


def test_markdown_shows_medians_with_spreads_and_the_json_keeps_the_rounds(tmp_path):
    result = _suite_result()
    text = suite.markdown(result)
    assert "Songs/s ratios, taken per round: openvino bf16 / onnxruntime fp32 2.0 ±0%" in text
    assert "| ort fp32 conv2d | 3^9 | 1 | 2 | 1 |" in text and "90.0% (fp32) ±0%" in text
    assert "fp32 160.0 GFLOP/s **±62%**" in text  # the peak itself swung: shown and flagged
    assert "(ratio 0.25 **±20% per round**" in text
    # bench.json round trip: the raw per-round figures survive and the README renders from the file
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(result))
    loaded = json.loads(path.read_text())
    assert loaded["backbones"]["rows"][1]["rounds"][1]["peak_gflops"] == 100.0
    assert loaded["pipeline"]["speed"]["rows"][0]["wall_s_rounds"] == [2.0, 4.0, 2.222]
    readme = f"intro\n{readme_tables.BEGIN}\nold tables\n{readme_tables.END}\noutro\n"
    rendered = readme_tables.render(readme, loaded)
    assert rendered.startswith(f"intro\n{readme_tables.BEGIN}\n") and rendered.endswith(f"{readme_tables.END}\noutro\n")
    assert "old tables" not in rendered and text in rendered


def test_readme_tables_still_read_the_saved_results_of_earlier_runs():
    """bench.json written before per-round ratios (no rounds, ratios or spreads) still renders."""
    saved = json.loads((RESULTS / "bench.json").read_text())
    readme = f"{readme_tables.BEGIN}\n{readme_tables.END}\n"
    assert "| target | measured | required | verdict |" in readme_tables.render(readme, saved)


def test_readme_markers_must_appear_once_in_order():
    with pytest.raises(SystemExit, match="exactly one pair of markers"):
        readme_tables.render(f"{readme_tables.END}\n{readme_tables.BEGIN}\n", _suite_result())


def _epyc(result: dict) -> dict:
    simd = [f for f in result["machine"]["simd"] if not f.startswith("amx")]
    return {**result, "machine": {**result["machine"], "cpu": "AMD EPYC", "simd": simd}}


def test_each_saved_run_renders_into_its_own_readme_section():
    """A second machine's run (another CPU) gets its own section, filled from its own file only."""
    spr, epyc = _suite_result(), _epyc(_suite_result())
    other = readme_tables.bench_marker("bench_amd_epyc.json")
    readme = f"x\n{readme_tables.BEGIN}\nSTALE-1\n{readme_tables.END}\ny\n{other}\nSTALE-2\n{readme_tables.END}\nz\n"
    assert readme_tables.bench_sections(readme) == ["bench.json", "bench_amd_epyc.json"]
    rendered = readme_tables.render(readme_tables.render(readme, spr), epyc, "bench_amd_epyc.json")
    first, second = rendered.split(other)
    assert suite.markdown(spr) in first and "AMD EPYC" not in first and first.endswith(f"{readme_tables.END}\ny\n")
    assert suite.markdown(epyc) in second and "AMX **no**" in second and second.endswith(f"{readme_tables.END}\nz\n")
    assert "STALE" not in rendered
    for broken in (f"{readme_tables.BEGIN}\n{other}\n{readme_tables.END}\n",  # a section without its own end
                   f"{readme_tables.BEGIN}\n{readme_tables.END}\n{readme_tables.BEGIN}\n{readme_tables.END}\n"):  # one run twice
        with pytest.raises(SystemExit, match="one pair of markers per saved run"):
            readme_tables.bench_sections(broken)


def test_readme_tables_command_fills_every_section_from_its_file_and_checks(tmp_path):
    import subprocess
    import sys

    (tmp_path / "bench.json").write_text(json.dumps(_suite_result()))
    (tmp_path / "bench_amd_epyc.json").write_text(json.dumps(_epyc(_suite_result())))
    (tmp_path / "catalogue.json").write_text("{}")
    readme = tmp_path / "README.md"
    readme.write_text(f"{readme_tables.BEGIN}\n{readme_tables.END}\n{readme_tables.bench_marker('bench_amd_epyc.json')}\n{readme_tables.END}\n")

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "samplecnn.benchmarks.readme_tables", "--json", str(tmp_path / "bench.json"),
                               "--catalogue-json", str(tmp_path / "catalogue.json"), "--readme", str(readme), *extra],
                              capture_output=True, text=True, timeout=120)

    assert run("--check").returncode == 1  # out of date
    assert run().returncode == 0
    text = readme.read_text()
    assert text.count("AMD EPYC") == 1 and text.count("synthetic") == 1 and text.index("synthetic") < text.index("AMD EPYC")
    assert run("--check").returncode == 0


def test_format_figure_is_the_one_console_form_of_a_spread():
    from samplecnn.benchmarks.common import format_figure, spread

    figure = spread([2.0, 2.5, 3.0])  # median 2.5, spread 40%: flagged
    assert format_figure(figure) == "2.5±40%!"
    assert format_figure(figure, digits=2) == "2.50±40%!"
    assert format_figure(spread([0.5, 0.51, 0.52]), percent=True) == "51.0%±4%"
    assert format_figure(None) == "" and format_figure(None, missing="-") == "-"
