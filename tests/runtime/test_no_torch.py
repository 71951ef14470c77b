"""The serving path never imports torch, not even transitively."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_runtime_inference_never_imports_torch(tiny_bundle, music_files, tmp_path):
    out = tmp_path / "tags.jsonl"
    script = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("error")  # no warnings at import either
        import samplecnn.runtime
        from samplecnn.runtime import Tagger
        from samplecnn.runtime.outputs import ResultWriter
        from samplecnn.runtime.infer import infer
        with Tagger({str(tiny_bundle)!r}) as tagger:
            (result,) = tagger.tag([{str(music_files["kevin_macleod_vibe_ace"])!r}], embeddings=True)
            features = list(tagger.features([{str(music_files["sorohanro_solo_trumpet_06"])!r}]))
        assert result.ok and features[0].ok, (result.error, features[0].error)
        code = infer([{str(music_files["sorohanro_solo_trumpet_06"])!r}], bundle={str(tiny_bundle)!r}, out={str(out)!r})
        assert code == 0, code
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not leaked, leaked
        print("no torch")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no torch" in done.stdout


def test_cli_infer_never_imports_torch_or_pydantic(tiny_bundle, music_files):
    """Nor pydantic: typer >= 0.29 validates every option through it, +0.3 s per start."""
    script = textwrap.dedent(
        f"""
        import sys
        from samplecnn.cli import app
        try:
            app(["infer", "--bundle", {str(tiny_bundle)!r}, {str(music_files["sorohanro_solo_trumpet_06"])!r}])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        heavy = sorted(m for m in ("torch", "pydantic") if m in sys.modules)
        assert not heavy, heavy
        print("no torch")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no torch" in done.stdout
