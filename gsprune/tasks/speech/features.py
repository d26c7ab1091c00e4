"""Log-mel features and SpecAugment masking, computed per batch on the model's device.

``LogMel`` turns padded waveforms ``float32[B, T]`` (with their lengths) into
per-utterance normalised log-mel features ``float32[B, n_mels, F]``: a
``window_ms`` Hann window every ``hop_ms`` (10 ms: 100 frames per second),
``F = T // hop + 1`` frames (torchaudio's centred STFT), ``log(mel + 1e-6)``,
then each mel bin standardised over the utterance's valid frames (as Jasper
does); frames past an utterance's length are set to 0.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class LogMel(nn.Module):
    """Waveforms -> normalised log-mel features; see the module doc for shapes."""

    def __init__(
        self, sample_rate: int, n_mels: int = 64, window_ms: float = 25.0, hop_ms: float = 10.0
    ):
        super().__init__()
        self.hop = round(sample_rate * hop_ms / 1000)
        window = round(sample_rate * window_ms / 1000)
        n_fft = 1 << (window - 1).bit_length()
        self.n_mels = n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=window,
            hop_length=self.hop,
            n_mels=n_mels,
        )

    def frames(self, samples: torch.Tensor | int) -> torch.Tensor | int:
        """Feature frames of waveforms of ``samples`` samples (centred STFT)."""
        return samples // self.hop + 1

    @torch.no_grad()
    def forward(
        self, waves: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waves: float32[B, T]``, ``lengths: int64[B]`` -> ``(float32[B, n_mels, F], int64[B])``.

        No gradients: the front end holds no trainable weights.
        """
        with torch.autocast(waves.device.type, enabled=False):
            features = torch.log(self.mel(waves.float()) + 1e-6)
        frames = self.frames(lengths)
        valid = torch.arange(features.shape[-1], device=waves.device)[None, :] < frames[:, None]
        valid = valid[:, None, :].to(features.dtype)
        count = valid.sum(-1, keepdim=True).clamp_min(1)
        mean = (features * valid).sum(-1, keepdim=True) / count
        var = (((features - mean) * valid) ** 2).sum(-1, keepdim=True) / count
        return (features - mean) / (var.sqrt() + 1e-5) * valid, frames


def spec_augment(
    features: torch.Tensor,
    lengths: torch.Tensor,
    freq_masks: int = 2,
    freq_width: int = 15,
    time_masks: int = 2,
    time_width: float = 0.05,
) -> torch.Tensor:
    """SpecAugment masking (Park et al. 2019) of a batch ``float[B, C, F]``, a new tensor.

    Each utterance gets ``freq_masks`` bands of up to ``freq_width`` mel bins and
    ``time_masks`` spans of up to ``time_width`` of its valid frames set to 0
    (the features are standardised, so 0 is the mean). Uses the global torch RNG.
    """
    b, c, f = features.shape
    device = features.device
    keep = torch.ones(b, c, f, dtype=torch.bool, device=device)
    bins = torch.arange(c, device=device)[None, :]
    steps = torch.arange(f, device=device)[None, :]
    for _ in range(freq_masks):
        width = torch.randint(0, freq_width + 1, (b, 1), device=device)
        start = (torch.rand(b, 1, device=device) * (c - width + 1)).long()
        keep &= ~((bins >= start) & (bins < start + width))[:, :, None]
    for _ in range(time_masks):
        limit = (lengths[:, None].float() * time_width).long()
        width = (torch.rand(b, 1, device=device) * (limit + 1).float()).long()
        start = (torch.rand(b, 1, device=device) * (lengths[:, None] - width + 1).float()).long()
        keep &= ~((steps >= start) & (steps < start + width))[:, None, :]
    return features * keep
