"""`samplecnn serve` as a real process on 127.0.0.1 (MLServer), queried with tritonclient:
Tagger's numbers, and every bad input answered 4xx while a concurrent good request succeeds."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

if importlib.util.find_spec("mlserver") is None:  # not imported here: its protobufs clash with tritonclient.grpc's
    pytest.skip("samplecnn serve needs MLServer: pip install 'samplecnn[serve]'", allow_module_level=True)
http = pytest.importorskip("tritonclient.http", reason="the tests query with tritonclient: pip install 'samplecnn[serve]'")

from tritonclient.utils import InferenceServerException  # noqa: E402

from samplecnn.runtime import Tagger  # noqa: E402
from samplecnn.runtime.serve import ServerProcess  # noqa: E402

MAX_BYTES = 500_000  # the test clips are <= 380 kB; examples/karissa_hobbs_lets_go_fishin.ogg is 734 kB
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

# The default model's own tags (head "backbone"), the first head of every response.
N_BACKBONE_TAGS = len(json.loads((ROOT / "runtime" / "default_model" / "manifest.json").read_text())["backbone_labels"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_dir = tmp_path_factory.mktemp("server-tmp")
    extra_args = ("--max-bytes", str(MAX_BYTES), "--threads", "1")
    with ServerProcess.start(extra_args=extra_args, env={"TMPDIR": str(tmp_dir)}, ready_timeout=120) as process:
        process.tmp_dir = tmp_dir
        yield process


@pytest.fixture(scope="module")
def client(server):
    return http.InferenceServerClient(server.url, concurrency=4)


def audio_input(data: bytes) -> "http.InferInput":
    tensor = http.InferInput("audio", [1], "BYTES")
    return tensor.set_data_from_numpy(np.array([base64.b64encode(data)], dtype=object), binary_data=False)


def tensor(name: str, array: np.ndarray, datatype: str) -> "http.InferInput":
    return http.InferInput(name, list(array.shape), datatype).set_data_from_numpy(array, binary_data=False)


def wav_bytes(samples: np.ndarray, rate: int = 22050) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_scores_equal_taggers(client, music_files):
    clips = [music_files["sorohanro_solo_trumpet_06"], music_files["kevin_macleod_vibe_ace"]]
    wave, rate = sf.read(str(music_files["sorohanro_solo_trumpet_06.44k_stereo"]), dtype="float32")
    mono = wave[:110_000].mean(axis=1).astype(np.float32)  # 2.5 s at 44.1 kHz: 440 kB, under MAX_BYTES
    with Tagger(threads=1) as tagger:
        expected = list(tagger.tag([*clips, (mono, rate)], top_k=3, embeddings=True))
    # in flight together (tritonclient's async requests): the server tags them together
    pending = [client.async_infer("samplecnn", [audio_input(p.read_bytes())], parameters={"top_k": 3, "embedding": True}) for p in clips]
    pending.append(client.async_infer("samplecnn", [tensor("waveform", mono, "FP32"), tensor("sample_rate", np.array([rate], np.int32), "INT32")], parameters={"top_k": 3, "embedding": True}))
    results = [p.get_result() for p in pending]
    for got, want in zip(results, expected):
        for head, scores in want.scores.items():
            assert [v.decode() if isinstance(v, bytes) else v for v in got.as_numpy(f"labels_{head}")] == list(scores)
            np.testing.assert_allclose(got.as_numpy(f"scores_{head}"), list(scores.values()), atol=1e-5)
            assert [v.decode() if isinstance(v, bytes) else v for v in got.as_numpy(f"top_{head}")] == [label for label, _ in want.top[head]]
        np.testing.assert_allclose(got.as_numpy("embedding"), want.embedding, atol=1e-5)
        assert got.get_response()["parameters"]["duration"] == pytest.approx(want.duration, abs=1e-3)


def _bad_requests(music_files):
    nan = np.sin(np.linspace(0, 3000, 40000)).astype(np.float32)
    nan[123] = np.nan
    good = music_files["sorohanro_solo_trumpet_06"].read_bytes()
    too_big = (ROOT / "examples" / "karissa_hobbs_lets_go_fishin.ogg").read_bytes()
    rate = tensor("sample_rate", np.array([22050], np.int32), "INT32")
    text = http.InferInput("audio", [1], "BYTES").set_data_from_numpy(np.array(["hello"], dtype=object), binary_data=False)
    return {
        "not audio": ([audio_input(b"definitely not an audio file " * 100)], 400, "not a readable audio file"),
        "silence": ([audio_input(wav_bytes(np.zeros(44100, np.float32)))], 400, "silent"),
        "NaN samples": ([audio_input(wav_bytes(nan))], 400, "NaN"),
        "empty body": ([audio_input(b"")], 400, "empty"),
        "over max-bytes": ([audio_input(too_big)], 413, f"limit of {MAX_BYTES}"),
        "wrong name": ([tensor("audio_file", np.array([base64.b64encode(good)], dtype=object), "BYTES")], 400, "unknown input 'audio_file'"),
        "wrong shape": ([tensor("audio", np.array([base64.b64encode(good)] * 2, dtype=object), "BYTES")], 400, "shape [2]"),
        "wrong type": ([tensor("waveform", np.ones(1000, np.float64), "FP64"), rate], 400, "datatype FP64"),
        "missing rate": ([tensor("waveform", np.ones(1000, np.float32), "FP32")], 400, "sample_rate"),
        "not base64": ([text], 400, "not base64"),
        "bad top_k": ([audio_input(good)], 400, "top_k"),
    }


def test_bad_inputs_get_4xx_while_a_concurrent_good_request_succeeds(client, server, music_files):
    good = [audio_input(music_files["brahms_hungarian_dance_5"].read_bytes())]
    with Tagger(threads=1) as tagger:
        (expected,) = tagger.tag([music_files["brahms_hungarian_dance_5"]])
    for name, (inputs, status, message) in _bad_requests(music_files).items():
        ok = client.async_infer("samplecnn", good)  # in flight while the bad one is answered
        parameters = {"top_k": 0} if name == "bad top_k" else None
        with pytest.raises(InferenceServerException) as caught:
            client.infer("samplecnn", inputs, parameters=parameters)
        np.testing.assert_allclose(ok.get_result().as_numpy("scores_backbone"), list(expected.scores["backbone"].values()), atol=1e-5)
        assert caught.value.status() == str(status), (name, caught.value)
        assert message in caught.value.message(), (name, caught.value.message())
    assert server.process.poll() is None and client.is_model_ready("samplecnn")


def test_binary_tensor_extension_is_refused_and_the_server_keeps_serving(client, music_files):
    binary = http.InferInput("audio", [1], "BYTES").set_data_from_numpy(np.array([b"\xff\xfe" * 10], dtype=object), binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("samplecnn", [binary])
    assert caught.value.status().startswith("4")
    assert client.infer("samplecnn", [audio_input(music_files["sorohanro_solo_trumpet_06"].read_bytes())]).as_numpy("scores_backbone").shape == (N_BACKBONE_TAGS,)


def test_grpc_nan_waveform_is_refused(server):
    grpc = pytest.importorskip("tritonclient.grpc")
    client = grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    wave = np.sin(np.linspace(0, 3000, 40000)).astype(np.float32)
    wave[7] = np.nan
    inputs = [grpc.InferInput("waveform", [len(wave)], "FP32").set_data_from_numpy(wave),
              grpc.InferInput("sample_rate", [1], "INT32").set_data_from_numpy(np.array([22050], np.int32))]
    with pytest.raises(InferenceServerException) as caught:
        client.infer("samplecnn", inputs)
    assert "NaN" in caught.value.message() and caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    wave[7] = 0.0
    inputs[0].set_data_from_numpy(wave)
    assert client.infer("samplecnn", inputs).as_numpy("scores_backbone").shape == (N_BACKBONE_TAGS,)


def test_no_request_file_is_left_behind(server, client, music_files):
    with pytest.raises(InferenceServerException):
        client.infer("samplecnn", [audio_input(b"not audio at all")])
    client.infer("samplecnn", [audio_input(music_files["sorohanro_solo_trumpet_06"].read_bytes())])
    assert list(server.tmp_dir.glob("samplecnn-request-*")) == []  # request bytes live in temp files only while tagged


def test_bad_bundle_exits_2_before_serving(tmp_path):
    result = subprocess.run([sys.executable, "-m", "samplecnn.cli", "serve", "--bundle", str(tmp_path / "missing"), "--port", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not a bundle folder" in result.stderr
