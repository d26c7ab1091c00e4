"""Speech datasets and batching: utterances in memory, padded batches, length buckets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from gsprune.tasks.speech.sources import Clip
from gsprune.tasks.speech.text import encode


class Utterances(Dataset):
    """Utterances held in memory: item = ``(waveform: float32[T] in [-1, 1], text)``."""

    def __init__(self, waves: list[torch.Tensor], texts: list[str], ids: list[str]) -> None:
        if not len(waves) == len(texts) == len(ids):
            raise ValueError(f"{len(waves)} waveforms, {len(texts)} texts, {len(ids)} ids")
        for text, id_ in zip(texts, ids, strict=True):
            if not text:
                raise ValueError(
                    f"utterance {id_} has an empty transcript; every utterance needs one"
                )
            encode(text)
        self.waves, self.texts, self.ids = waves, texts, ids

    @classmethod
    def from_clips(cls, clips: Sequence[Clip]) -> Utterances:
        waves = [torch.from_numpy(c.audio.astype(np.float32) / 32768.0) for c in clips]
        return cls(waves, [c.text for c in clips], [c.id for c in clips])

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return self.waves[index], self.texts[index]


def collate(items: Sequence[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, ...]:
    """Pad a batch: ``(waves: float32[B, T], wave_lengths: int64[B], labels: int64[B, L],
    label_lengths: int64[B])``; labels are padded with 0 (the CTC blank, never a target)."""
    waves, texts = zip(*items, strict=True)
    wave_lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(wave_lengths.max()))
    for row, w in enumerate(waves):
        batch[row, : len(w)] = w
    targets = [torch.tensor(encode(t), dtype=torch.long) for t in texts]
    label_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    labels = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=0)
    return batch, wave_lengths, labels, label_lengths


class LengthBatches(Sampler[list[int]]):
    """Batches of similar length (less padding): sort by length, cut, shuffle the batches.

    ``lengths[i]`` is utterance i's length. With ``shuffle`` the indices are
    shuffled before a stable sort (ties in random order) and the batch order is
    shuffled every epoch (global torch RNG); ``drop_last`` drops the one short
    batch. Without ``shuffle`` the order is fixed (evaluation).

    ``sorta_grad``: in epoch 0 (``set_epoch``; the training loop passes the
    number of epochs the task object has trained) the batches are taken
    shortest first (SortaGrad, Amodei et al. 2016, Deep Speech 2): a CTC model
    leaves its all-blank plateau sooner on short utterances. That is dense
    training's first epoch, or, in a run whose dense model comes from the
    cache, its first fine-tuning epoch. Later epochs are shuffled as usual.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        sorta_grad: bool = False,
    ):
        self.lengths = torch.as_tensor(lengths)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.sorta_grad = sorta_grad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.lengths)
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        order = order[torch.sort(self.lengths[order], stable=True).indices]
        batches = list(torch.split(order, self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and not (self.sorta_grad and self.epoch == 0):
            batches = [batches[i] for i in torch.randperm(len(batches))]
        for batch in batches:
            yield batch.tolist()
