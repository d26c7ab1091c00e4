"""Features, SpecAugment, Jasper, CTC greedy decoding, WER, latency columns, prunable layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from gsprune import tasks
from gsprune.tasks.speech.features import LogMel, spec_augment
from gsprune.tasks.speech.jasper import PRESETS, build_jasper
from gsprune.tasks.speech.task import cer, greedy_decode, wer
from gsprune.tasks.speech.text import ALPHABET, encode
from gsprune.views import prunable_parameters

from .conftest import tiny_jasper

CONF = Path(__file__).resolve().parents[3] / "conf" / "task"
TINY_JASPER = tiny_jasper(0.0)


def config(name: str, **changes) -> dict:
    cfg = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    cfg.update(changes)
    return cfg


def test_log_mel_shapes_lengths_and_normalisation():
    front = LogMel(8000, n_mels=64)
    assert front.hop == 80 and front.frames(8000) == 101
    waves = torch.randn(2, 8000)
    waves[1, 4000:] = 0
    features, frames = front(waves, torch.tensor([8000, 4000]))
    assert features.shape == (2, 64, 101) and frames.tolist() == [101, 51]
    assert features[1, :, 51:].abs().sum() == 0  # past the utterance: zeros
    valid = features[0]
    assert (
        valid.mean(-1).abs().max() < 1e-4 and (valid.std(-1, unbiased=False) - 1).abs().max() < 1e-2
    )
    assert LogMel(16000).frames(16000 * 10) == 1001  # 10 s at 10 ms hops


def test_spec_augment_masks_bands_and_spans_only():
    torch.manual_seed(0)
    features = torch.ones(4, 64, 200)
    masked = spec_augment(features, torch.tensor([200, 150, 100, 50]), 2, 10, 2, 0.1)
    assert masked.shape == features.shape and features.min() == 1  # a new tensor
    zero = masked == 0
    assert zero.any() and (masked[~zero] == 1).all()
    # Frequency masks cover whole rows, time masks whole columns: at most 2*10 bins per row set.
    full_rows = zero.all(dim=2).sum(dim=1)
    assert (full_rows <= 20).all()
    nothing = spec_augment(features, torch.tensor([200] * 4), 0, 10, 0, 0.1)
    assert torch.equal(nothing, features)


def test_jasper_shapes_output_lengths_and_presets():
    model = build_jasper(64, len(ALPHABET) + 1, None, TINY_JASPER)
    logits = model(torch.randn(3, 64, 101))
    assert logits.shape == (3, 29, 51)
    assert model.output_lengths(torch.tensor([101, 1001, 50])).tolist() == [51, 501, 25]
    assert len(model.blocks) == 2 and all(len(b.convs) == 2 for b in model.blocks)
    for preset, blocks, repeats in (("10x5", 10, 5), ("5x3", 5, 3)):
        args = PRESETS[preset]
        assert len(args["blocks"]) == blocks and args["repeats"] == repeats
    big = build_jasper(64, 29, "5x3", {})
    assert big.blocks[4].convs[2].conv.weight.shape == (768, 768, 25)
    with pytest.raises(ValueError, match="preset='7x7' is unknown"):
        build_jasper(64, 29, "7x7", {})
    with pytest.raises(ValueError, match="lacks"):
        build_jasper(64, 29, None, {"repeats": 1})
    with pytest.raises(ValueError, match="do not fit Jasper"):
        build_jasper(64, 29, None, {**TINY_JASPER, "prologue": {"channels": 8}})


def scores(path: list[int], vocab: int = 29) -> torch.Tensor:
    """One-hot log-probabilities ``[1, vocab, len(path)]`` whose arg-max is ``path``."""
    out = torch.full((1, vocab, len(path)), -10.0)
    out[0, path, torch.arange(len(path))] = 0.0
    return out


def test_greedy_decoding_merges_repeats_then_drops_blanks():
    a, b, space = encode("a")[0], encode("b")[0], encode(" ")[0]
    path = [0, a, a, 0, a, b, b, space, 0, b, 0, 0]
    assert greedy_decode(scores(path), torch.tensor([12])) == ["aab b"]
    assert greedy_decode(scores(path), torch.tensor([4])) == ["a"]  # only valid frames
    assert greedy_decode(scores([0, 0, 0]), torch.tensor([3])) == [""]


def test_wer_on_known_cases():
    assert wer(["press one now"], ["press one now"]) == 0.0
    assert wer(["press one now"], ["press two now"]) == pytest.approx(100 / 3)
    assert wer(["a b", "c d e f"], ["a", "c d e f g"]) == pytest.approx(100 * 2 / 6)
    assert wer(["press one"], [""]) == 100.0
    with pytest.raises(ValueError, match="empty test set"):
        wer([], [])


def test_cer_on_known_cases():
    assert cer(["press one"], ["press one"]) == 0.0
    assert cer(["press one"], ["press ont"]) == pytest.approx(100 / 9)  # 1 of 9 characters
    assert cer(["ab", "cd"], ["a", "cde"]) == pytest.approx(100 * 2 / 4)  # a deletion, an insertion
    with pytest.raises(ValueError, match="empty test set"):
        cer([], [])


def test_latency_columns_are_ten_seconds_at_the_model_frame_rate():
    task = tasks.build(config("speech", model_args=TINY_JASPER))
    model = task.build_model()
    names = list(prunable_parameters(model, task.cfg["include"], task.cfg["exclude"]))
    assert "prologue.conv.weight" not in names and "classifier.weight" not in names
    assert "blocks.0.convs.0.conv.weight" in names and "blocks.1.residual.conv.weight" in names
    assert "epilogue.0.conv.weight" in names and "epilogue.1.conv.weight" in names
    columns = task.latency_columns(model, names)
    assert set(columns) == set(names) and set(columns.values()) == {501}
    assert task.latency_input(model) == {
        "seconds": 10.0,
        "feature_frames": 1001,
        "model_frames": 501,
    }
    assert not task.higher_is_better and task.metric_name == "wer"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"model": "conformer"}, "task.model='conformer'"),
        ({"sample_rate": 16000}, "task.sample_rate=16000"),
        ({"preset": "9x9"}, "preset='9x9'"),
        ({"model_args": 5}, "task.model_args=5 must be a mapping"),
        ({"sorta_grad": "yes"}, "task.sorta_grad"),
        ({"features": {"n_bins": 80}}, r"task.features has unknown key\(s\) \['n_bins'\]"),
        ({"batch_size": 0}, "task.batch_size=0"),
        ({"include": "*"}, "must be a list of fnmatch patterns"),
    ],
)
def test_bad_config_is_refused_before_any_data_work(changes, match, tmp_path):
    changes = {"model_args": TINY_JASPER, **changes}
    cfg = config("speech", cache_dir=str(tmp_path / "cache"), **changes)
    with pytest.raises(ValueError, match=match):
        tasks.build(cfg).check()
    assert not (tmp_path / "cache").exists()
