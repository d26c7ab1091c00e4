"""Jasper (Li et al. 2019): a deep 1-D convolutional acoustic model for CTC.

Layout (parameter names in brackets, which the prunable-layer patterns match):

- prologue [``prologue.conv``]: Conv1d(n_mels -> C0, kernel K0, stride 2) + BN
  + ReLU + dropout; it halves the frame rate (100 -> 50 frames per second);
- B blocks [``blocks.<b>``], each R sub-blocks [``blocks.<b>.convs.<r>``] of
  Conv1d(kernel K_b, "same" padding) + BN + ReLU + dropout, with a residual
  branch [``blocks.<b>.residual``] (1x1 Conv1d + BN of the block input) added
  before the last sub-block's ReLU;
- epilogue: [``epilogue.0.conv``] Conv1d(kernel K_e, dilation 2), [``epilogue.1.conv``]
  1x1 Conv1d, each + BN + ReLU + dropout, and the classifier [``classifier``],
  a 1x1 Conv1d with bias onto the CTC alphabet.

Input ``float32[B, n_mels, F]`` features, output logits ``float32[B, V, F']``
with ``F' = output_lengths(F)``. Jasper's published 10x5 and 5x3 are presets
(``PRESETS``); "10x5" means 10 blocks of 5 sub-blocks, the 5 block shapes of
the paper each used twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

JASPER_GROUPS = [(256, 11, 0.2), (384, 13, 0.2), (512, 17, 0.2), (640, 21, 0.3), (768, 25, 0.3)]
PRESETS: dict[str, dict[str, Any]] = {
    "10x5": {
        "prologue": {"channels": 256, "kernel": 11, "dropout": 0.2},
        "blocks": [
            {"channels": c, "kernel": k, "dropout": d} for c, k, d in JASPER_GROUPS for _ in (0, 1)
        ],
        "repeats": 5,
        "epilogue": {"channels": 896, "kernel": 29, "hidden": 1024, "dropout": 0.4},
    },
    "5x3": {
        "prologue": {"channels": 256, "kernel": 11, "dropout": 0.2},
        "blocks": [{"channels": c, "kernel": k, "dropout": d} for c, k, d in JASPER_GROUPS],
        "repeats": 3,
        "epilogue": {"channels": 896, "kernel": 29, "hidden": 1024, "dropout": 0.4},
    },
}


class ConvBN(nn.Module):
    """Conv1d (no bias) + BatchNorm1d; ReLU and dropout are applied by the caller."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(cin, cout, kernel, stride, padding, dilation, bias=False)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class JasperBlock(nn.Module):
    """R x (Conv1d + BN + ReLU + dropout) with a 1x1 conv + BN residual of the block input."""

    def __init__(self, cin: int, cout: int, kernel: int, repeats: int, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList(
            ConvBN(cin if r == 0 else cout, cout, kernel) for r in range(repeats)
        )
        self.residual = ConvBN(cin, cout, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for index, conv in enumerate(self.convs):
            out = conv(out)
            if index == len(self.convs) - 1:
                out = out + self.residual(x)
            out = self.drop(torch.relu(out))
        return out


class Jasper(nn.Module):
    """See the module doc; ``blocks`` is a list of {channels, kernel, dropout}, one per block."""

    def __init__(
        self,
        n_mels: int,
        vocab: int,
        prologue: Mapping[str, Any],
        blocks: Sequence[Mapping[str, Any]],
        repeats: int,
        epilogue: Mapping[str, Any],
    ) -> None:
        super().__init__()
        if repeats < 1 or not blocks:
            raise ValueError(
                f"Jasper needs at least one block and repeats >= 1; got {len(blocks)} blocks, "
                f"repeats={repeats}"
            )
        self.stride = 2
        self.prologue = ConvBN(
            n_mels, int(prologue["channels"]), int(prologue["kernel"]), self.stride
        )
        self.prologue_drop = nn.Dropout(float(prologue["dropout"]))
        channels = int(prologue["channels"])
        layers = []
        for spec in blocks:
            layers.append(
                JasperBlock(
                    channels,
                    int(spec["channels"]),
                    int(spec["kernel"]),
                    repeats,
                    float(spec["dropout"]),
                )
            )
            channels = int(spec["channels"])
        self.blocks = nn.Sequential(*layers)
        hidden = int(epilogue["hidden"])
        self.epilogue = nn.ModuleList(
            [
                ConvBN(channels, int(epilogue["channels"]), int(epilogue["kernel"]), dilation=2),
                ConvBN(int(epilogue["channels"]), hidden, 1),
            ]
        )
        self.epilogue_drop = nn.Dropout(float(epilogue["dropout"]))
        self.classifier = nn.Conv1d(hidden, vocab, 1)

    def output_lengths(self, frames: torch.Tensor) -> torch.Tensor:
        """Output frames for ``frames`` input frames (only the prologue's stride changes them)."""
        conv = self.prologue.conv
        pad, kernel = conv.padding[0], conv.kernel_size[0]
        return torch.div(frames + 2 * pad - kernel, self.stride, rounding_mode="floor") + 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.prologue_drop(torch.relu(self.prologue(features)))
        x = self.blocks(x)
        for layer in self.epilogue:
            x = self.epilogue_drop(torch.relu(layer(x)))
        return self.classifier(x)


def build_jasper(
    n_mels: int, vocab: int, preset: str | None, model_args: Mapping[str, Any]
) -> Jasper:
    """Jasper from a preset ("10x5", "5x3") or none, with ``model_args`` overriding its keys."""
    if not isinstance(model_args, Mapping):
        raise ValueError(
            f"task.model_args={model_args!r} must be a mapping of Jasper settings (prologue, "
            "blocks, repeats, epilogue), e.g. task.model_args={repeats:3}, or null"
        )
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"task.preset={preset!r} is unknown; accepted: null, {', '.join(PRESETS)}")
    args = {**(PRESETS[preset] if preset else {}), **model_args}
    missing = {"prologue", "blocks", "repeats", "epilogue"} - set(args)
    if missing:
        raise ValueError(
            f"task.model_args lacks {sorted(missing)}; give prologue, blocks, repeats and "
            "epilogue (see gsprune/tasks/speech/jasper.py) or a task.preset"
        )
    try:
        return Jasper(n_mels, vocab, **args)
    except (TypeError, KeyError) as err:
        raise ValueError(
            f"task.model_args={dict(model_args)!r} do not fit Jasper ({err!r}); accepted keys: "
            "prologue {channels, kernel, dropout}, blocks [{channels, kernel, dropout}], "
            "repeats, epilogue {channels, kernel, hidden, dropout}"
        ) from err
