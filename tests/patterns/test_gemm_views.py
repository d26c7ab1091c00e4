"""GEMM views round-trip for every prunable module; layer selection by fnmatch patterns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gsprune.views import from_gemm, gemm_columns, gemm_view, prunable_parameters


@pytest.mark.parametrize(
    ("module", "name", "gemm_shape"),
    [
        (nn.Linear(6, 5), "weight", (5, 6)),
        (nn.Conv2d(3, 4, (3, 2)), "weight", (4, 18)),
        (nn.Conv2d(4, 8, 3, groups=2), "weight", (8, 18)),
        (nn.Conv1d(3, 7, 5), "weight", (7, 15)),
        (nn.LSTM(5, 3, num_layers=2), "weight_ih_l1", (12, 3)),
        (nn.LSTM(5, 3), "weight_hh_l0", (12, 3)),
    ],
)
def test_round_trip(module, name, gemm_shape):
    weight = getattr(module, name).detach()
    matrix = gemm_view(weight)
    assert matrix.shape == gemm_shape
    assert matrix.data_ptr() == weight.data_ptr()  # a view, not a copy
    assert torch.equal(from_gemm(matrix, weight.shape), weight)
    assert torch.equal(matrix[1], weight[1].flatten())  # row i = output i


def test_from_gemm_rejects_a_mismatched_shape():
    with pytest.raises(ValueError, match=r"has 12 entries, the weight shape \(3, 5\) needs 15"):
        from_gemm(torch.zeros(3, 4), (3, 5))
    with pytest.raises(ValueError, match="first dim is M"):
        from_gemm(torch.zeros(3, 4), (4, 3))


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.body = nn.Sequential(nn.Conv1d(4, 4, 3), nn.ReLU())
        self.rnn = nn.LSTM(4, 8, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(16, 2)


def test_prunable_parameters_in_model_order():
    model = Tiny()
    names = list(prunable_parameters(model, ["*"], []))
    lstm = [
        f"rnn.weight_{g}_l{i}{s}" for i in (0, 1) for s in ("", "_reverse") for g in ("ih", "hh")
    ]
    assert names == ["conv1.weight", "body.0.weight", *lstm, "fc.weight"]
    selected = prunable_parameters(model, ["*"], ["conv1.weight", "fc.*"])
    assert list(selected) == ["body.0.weight", *lstm]
    assert selected["body.0.weight"] is model.body[0].weight
    assert list(prunable_parameters(model, ["rnn.weight_hh_*"], ["*reverse"])) == [
        "rnn.weight_hh_l0",
        "rnn.weight_hh_l1",
    ]


def test_include_pattern_that_matches_nothing():
    with pytest.raises(ValueError, match=r"include pattern 'layer9\.\*' matches no prunable"):
        prunable_parameters(Tiny(), ["*conv*", "layer9.*"], [])
    with pytest.raises(ValueError, match="e.g. conv1.weight, body.0.weight"):
        prunable_parameters(Tiny(), ["bn.weight"], [])


def test_gemm_columns_counts_output_positions_per_example():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 16x16 input -> 8x8 outputs
        nn.Flatten(0, -1),
        nn.Unflatten(0, (1, 512)),
        nn.Linear(512, 10),
    )
    lstm = nn.LSTM(4, 6, num_layers=2)
    x = torch.randn(1, 3, 16, 16)
    counts = gemm_columns(model, ["0.weight", "3.weight"], lambda: model(x))
    assert counts == {"0.weight": 64, "3.weight": 1}
    seq = torch.randn(7, 2, 4)  # 7 steps, batch 2
    names = ["weight_ih_l0", "weight_hh_l1"]
    wrapped = nn.ModuleDict({"rnn": lstm})
    counts = gemm_columns(wrapped, [f"rnn.{n}" for n in names], lambda: lstm(seq))
    assert counts == {"rnn.weight_ih_l0": 14, "rnn.weight_hh_l1": 14}
    assert not model[0]._forward_hooks and not lstm._forward_hooks


def test_gemm_columns_names_layers_the_forward_skipped():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    with pytest.raises(ValueError, match="1.weight"):
        gemm_columns(model, ["1.weight"], lambda: model[0](torch.randn(2, 4)))
