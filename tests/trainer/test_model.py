import pytest
import torch

from samplecnn.trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from samplecnn.trainer.model import PRESETS, BackboneConfig, SampleCNN, count_parameters, preset, summary


@pytest.mark.parametrize("scale", list(PRESETS))
def test_every_preset_ends_at_one_frame_and_taps_named_levels(scale):
    config = preset(scale, n_tags=7, width=0.25)
    model = SampleCNN(config).eval()
    with torch.no_grad():
        out = model(torch.randn(2, config.segment_samples))
    assert list(out) == ["level1", "level2", "level3", "logits"]
    for name, width in config.level_widths.items():
        assert out[name].shape == (2, width)
    assert out["logits"].shape == (2, 7)
    assert config.m ** config.n == config.segment_samples // config.m


def test_paper_numbers_for_3_9():
    config = preset("3^9", n_tags=50)
    assert config.segment_samples == 59049
    assert abs(count_parameters(SampleCNN(config)) - 1.87e6) < 0.01e6
    assert abs(config.flops_per_segment() / 1e9 - 3.46) < 0.02
    assert config.level_widths == {"level1": 512, "level2": 512, "level3": 256}
    total = sum(r["gflop_per_audio_second"] for r in summary())
    assert abs(total - 4.4) < 0.1


def test_segment_lengths_of_presets():
    assert {s: preset(s, 1).segment_samples for s in PRESETS} == {"2^14": 32768, "3^9": 59049, "5^6": 78125}


def test_wrong_input_length_is_a_clear_error():
    model = SampleCNN(preset("3^9", 3, width=0.125))
    with pytest.raises(ValueError, match="59049"):
        model(torch.randn(1, 1000))


def test_bad_configs_rejected():
    with pytest.raises(ValueError, match="m\\^n"):
        preset("3x9", 5)
    with pytest.raises(ValueError):
        BackboneConfig(m=3, n=9, n_tags=0)


def test_checkpoint_round_trip_rebuilds_identical_model(tmp_path):
    torch.manual_seed(1)
    model = SampleCNN(preset("5^6", n_tags=4, width=0.125)).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, ["a", "b", "c", "d"], {"epochs": 1})
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config and ckpt.labels == ["a", "b", "c", "d"] and ckpt.training == {"epochs": 1}
    rebuilt = ckpt.build_model()
    x = torch.randn(3, model.config.segment_samples)
    with torch.no_grad():
        a, b = model(x), rebuilt(x)
    for name in a:
        assert torch.equal(a[name], b[name])


def test_non_checkpoint_files_refused(tmp_path, data_dir):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(data_dir / "sorohanro_solo_trumpet_06.ogg")
