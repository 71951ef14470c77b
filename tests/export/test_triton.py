"""The Triton model repository: configs parse into Triton's own ModelConfig protobuf and match the
ONNX graphs; the python-backend model's ``execute`` gives Tagger's numbers on real clips.

Triton itself cannot run here (no tritonserver binary), so ``execute`` runs against
``StandInPbUtils`` below: the smallest stand-in for ``triton_python_backend_utils`` that lets the
repository's own model.py run, whose BLS requests execute the repository's own scale graphs
(``REPO/scale_*/1/model.onnx``) with onnxruntime. Everything else is real: the default model,
real clips, the runtime's decoding, pooling and heads.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="Triton's ModelConfig protobuf ships in tritonclient: pip install 'samplecnn[serve]'")

from google.protobuf import json_format, text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from samplecnn.cli import app  # noqa: E402
from samplecnn.export.triton import TritonError, write_repository  # noqa: E402
from samplecnn.runtime import Tagger  # noqa: E402
from samplecnn.runtime.bundle import Bundle  # noqa: E402
from samplecnn.runtime.oip import output_specs  # noqa: E402
from samplecnn.runtime.tagger import default_bundle_path  # noqa: E402

ONNX_TYPES = {"tensor(float)": "TYPE_FP32"}
V2_TYPES = {"FP32": "TYPE_FP32", "BYTES": "TYPE_STRING"}


def parse_config(path: Path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def type_name(value: int) -> str:
    return model_config_pb2.DataType.Name(value)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return write_repository(default_bundle_path(), tmp_path_factory.mktemp("triton") / "repo", max_batch_size=8)


def test_scale_configs_parse_and_match_the_onnx_graphs(repo):
    import onnxruntime as ort

    bundle = Bundle.load(default_bundle_path())
    for scale in bundle.scales:
        folder = repo / ("scale_" + scale.name.replace("^", "-"))
        config = parse_config(folder / "config.pbtxt")
        assert config.name == folder.name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size == 8
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
        assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [(1, "KIND_CPU")]
        session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        # Triton's dims leave out the batch axis, which the graph must keep dynamic.
        graph_inputs = [(i.name, ONNX_TYPES[i.type], list(i.shape[1:])) for i in session.get_inputs()]
        assert all(isinstance(i.shape[0], str) for i in session.get_inputs())
        assert [(i.name, type_name(i.data_type), list(i.dims)) for i in config.input] == graph_inputs == [("waveform", "TYPE_FP32", [scale.segment_samples])]
        graph_outputs = {o.name: (ONNX_TYPES[o.type], list(o.shape[1:])) for o in session.get_outputs()}
        config_outputs = {o.name: (type_name(o.data_type), list(o.dims)) for o in config.output}
        assert set(config_outputs) == {"level1", "level2", "level3", "logits"}
        assert config_outputs == {n: graph_outputs[n] for n in config_outputs}
        assert (folder / "1" / "model.onnx").read_bytes() == bundle.path(scale.models["fp32"]).read_bytes()


def test_python_model_config_matches_the_response_contract(repo):
    bundle = Bundle.load(default_bundle_path())
    config = parse_config(repo / "samplecnn" / "config.pbtxt")
    assert config.backend == "python" and config.max_batch_size == 0
    assert [(i.name, type_name(i.data_type), list(i.dims), i.optional) for i in config.input] == [
        ("audio", "TYPE_STRING", [1], True), ("waveform", "TYPE_FP32", [-1], True), ("sample_rate", "TYPE_INT32", [1], True)
    ]
    assert [(o.name, type_name(o.data_type), list(o.dims)) for o in config.output] == [(n, V2_TYPES[d], s) for n, d, s in output_specs(bundle)]
    assert {o.name for o in config.output} >= {"scores_backbone", "scores_quadrant", "top_instruments", "embedding"}
    assert config.parameters["scale_models"].string_value == "2^14=scale_2-14;3^9=scale_3-9;5^6=scale_5-6"
    assert (repo / "samplecnn" / "1" / "model.py").is_file() and Bundle.load(repo / "samplecnn" / "1" / "bundle")
    assert "tritonserver --model-repository" in (repo / "README.md").read_text()


# --- the python-backend model's execute, against Tagger -----------------------------------------


class StandInPbUtils(types.ModuleType):
    """Minimal triton_python_backend_utils: tensors, requests, responses, errors, and BLS
    requests that run the repository's scale graphs (REPO/<model>/1/model.onnx) with onnxruntime."""

    def __init__(self, repo: Path) -> None:
        super().__init__("triton_python_backend_utils")
        import onnxruntime as ort

        self.sessions = {p.parent.parent.name: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in repo.glob("scale_*/1/model.onnx")}
        self.bls_batches: list[int] = []
        pb = self

        class Tensor:
            def __init__(self, name, array):
                self._name, self._array = name, array

            def name(self):
                return self._name

            def as_numpy(self):
                return self._array

        class TritonError:
            INVALID_ARG = 3

            def __init__(self, message, code=None):
                self._message, self.code = message, code

            def message(self):
                return self._message

        class InferenceResponse:
            def __init__(self, output_tensors=(), error=None):
                self.output_tensors, self._error = list(output_tensors), error

            def has_error(self):
                return self._error is not None

            def error(self):
                return self._error

        class InferenceRequest:
            def __init__(self, model_name, requested_output_names, inputs, parameters="{}"):
                self.model_name, self.outputs, self.inputs, self._parameters = model_name, requested_output_names, inputs, parameters

            def parameters(self):
                return self._parameters

            def exec(self):
                (tensor,) = self.inputs
                pb.bls_batches.append(len(tensor.as_numpy()))
                values = pb.sessions[self.model_name].run(self.outputs, {tensor.name(): tensor.as_numpy()})
                return InferenceResponse([Tensor(n, v) for n, v in zip(self.outputs, values)])

        self.Tensor, self.TritonError, self.InferenceResponse, self.InferenceRequest = Tensor, TritonError, InferenceResponse, InferenceRequest

    @staticmethod
    def _by_name(tensors, name):
        return next((t for t in tensors if t.name() == name), None)

    def get_input_tensor_by_name(self, request, name):
        return self._by_name(request.inputs, name)

    def get_output_tensor_by_name(self, response, name):
        return self._by_name(response.output_tensors, name)


@pytest.fixture(scope="module")
def triton_model(repo):
    pb_utils = StandInPbUtils(repo)
    sys.modules["triton_python_backend_utils"] = pb_utils
    spec = importlib.util.spec_from_file_location("samplecnn_triton_model_py", repo / "samplecnn" / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = json_format.MessageToDict(parse_config(repo / "samplecnn" / "config.pbtxt"), preserving_proto_field_name=True)
    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps(config), "model_repository": str(repo / "samplecnn"), "model_version": "1"})
    yield model, pb_utils
    model.finalize()
    del sys.modules["triton_python_backend_utils"]


def _request(pb_utils, parameters: dict | None = None, **arrays):
    tensors = [pb_utils.Tensor(name, value) for name, value in arrays.items()]
    return pb_utils.InferenceRequest("samplecnn", [], tensors, json.dumps(parameters or {}))


def _wav_bytes(samples: np.ndarray, rate: int = 22050, subtype: str = "FLOAT") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def test_execute_gives_taggers_numbers_and_refuses_bad_requests(triton_model, music_files):
    model, pb = triton_model
    clips = [music_files["sorohanro_solo_trumpet_06"], music_files["brahms_hungarian_dance_5"]]
    wave, rate = sf.read(str(music_files["sorohanro_solo_trumpet_06.44k_stereo"]), dtype="float32")
    mono = wave.mean(axis=1).astype(np.float32)
    nan_wave = np.sin(np.linspace(0, 2000, 30000)).astype(np.float32)
    nan_wave[100] = np.nan
    requests = [
        _request(pb, {"top_k": 3, "embedding": True}, audio=np.array([clips[0].read_bytes()], dtype=object)),
        _request(pb, audio=np.array([b"this is not audio, just text" * 50], dtype=object)),
        _request(pb, audio=np.array([clips[1].read_bytes()], dtype=object)),
        _request(pb, audio=np.array([_wav_bytes(np.zeros(22050, np.float32))], dtype=object)),
        _request(pb, waveform=mono, sample_rate=np.array([rate], np.int32)),
        _request(pb, audio=np.array([_wav_bytes(nan_wave)], dtype=object)),
        _request(pb, audio=np.array([b""], dtype=object)),
        _request(pb, waveform=mono),
    ]
    responses = model.execute(requests)
    assert len(responses) == len(requests)
    errors = {i: r.error().message() for i, r in enumerate(responses) if r.has_error()}
    assert sorted(errors) == [1, 3, 5, 6, 7]
    assert "not a readable audio file" in errors[1] and errors[1].startswith("input 'audio'")
    assert "silent" in errors[3] and "NaN" in errors[5] and "empty" in errors[6] and "sample_rate" in errors[7]
    assert all(r.error().code == pb.TritonError.INVALID_ARG for r in responses if r.has_error())
    assert pb.bls_batches and max(pb.bls_batches) <= 8

    with Tagger() as tagger:
        expected = list(tagger.tag([clips[0], clips[1], (mono, rate)], top_k=3, embeddings=True))
    for index, want in zip((0, 2, 4), expected):
        got = {t.name(): t.as_numpy() for t in responses[index].output_tensors}
        for head, scores in want.scores.items():
            labels = [v.decode() for v in got[f"labels_{head}"]]
            assert labels == list(scores)
            np.testing.assert_allclose(got[f"scores_{head}"], [scores[label] for label in labels], atol=1e-5)
        if index == 0:
            assert [v.decode() for v in got["top_backbone"]] == [label for label, _ in want.top["backbone"]]
            np.testing.assert_allclose(got["embedding"], want.embedding, atol=1e-5)
        else:
            assert "embedding" not in got and len(got["top_backbone"]) == 5


# --- the command ---------------------------------------------------------------------------------


def test_cli_writes_the_repository_and_refuses_bad_options(tmp_path):
    runner = CliRunner()
    bundle = str(default_bundle_path())
    out = tmp_path / "repo"
    result = runner.invoke(app, ["triton", bundle, str(out), "--precision", "int8", "--instances", "2"])
    assert result.exit_code == 0, result.output
    config = parse_config(out / "scale_3-9" / "config.pbtxt")
    assert config.instance_group[0].count == 2
    assert (out / "scale_3-9" / "1" / "model.onnx").read_bytes() == (default_bundle_path() / "scale_3-9.int8.onnx").read_bytes()
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    for args, message in [
        (["--precision", "fp16"], "no fp16 ONNX graph"),
        (["--engines", "--kind", "gpu"], "TensorRT engine"),
        (["--engines"], "--kind gpu"),
        (["--max-batch-size", "0"], "max_batch_size = 0"),
    ]:
        result = runner.invoke(app, ["triton", bundle, str(out), *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # a refused run replaces nothing

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(TritonError, match="not a samplecnn Triton repository"):
        write_repository(bundle, foreign)
    assert (foreign / "keep.txt").read_text() == "mine" and not list(tmp_path.glob(".foreign.*"))
