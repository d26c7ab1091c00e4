"""LibriSpeech read from the user's copy in its release layout (``task=librispeech``).

``<data_dir>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``
with ``<speaker>-<chapter>.trans.txt`` beside them, read through
``torchaudio.datasets.LIBRISPEECH`` with ``download=False``; its FLAC
decoding goes through TorchCodec and FFmpeg (requirements.txt, apt.txt).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from gsprune.tasks.speech.text import normalize

LIBRISPEECH_SPLITS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)


def librispeech_folder(data_dir: str | os.PathLike, split: str) -> Path:
    """``<data_dir>/LibriSpeech/<split>``, checked to hold speaker/chapter folders."""
    folder = Path(data_dir) / "LibriSpeech" / split
    if not folder.is_dir() or not any(folder.iterdir()):
        raise FileNotFoundError(
            f"the LibriSpeech split {split!r} is not at {folder}. Expected the release layout "
            "<data_dir>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac "
            "with <speaker>-<chapter>.trans.txt beside them (unpack the openslr.org/12 archives "
            "into data_dir); or run the embedded speech task, which needs no download, with "
            "`task=speech`"
        )
    return folder


class LibriSpeech(Dataset):
    """One LibriSpeech split through ``torchaudio.datasets.LIBRISPEECH`` (download off).

    Items are ``(waveform: float32[T], normalised transcript)`` at the file's
    16 kHz rate. A transcript that normalises to nothing, or a FLAC file that
    cannot be decoded, raises ValueError naming the file.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str) -> None:
        import torchaudio

        root = librispeech_folder(data_dir, split).parent.parent
        self.split = split
        self.dataset = torchaudio.datasets.LIBRISPEECH(
            str(root), url=split, folder_in_archive="LibriSpeech", download=False
        )
        # torchaudio keeps the utterance names ("<speaker>-<chapter>-<utt>") in _walker
        self.ids = [f"{split}/{name}" for name in self.dataset._walker]

    def texts(self) -> list[str]:
        """The normalised transcripts in item order, read from the .trans.txt files only."""
        lines: dict[str, str] = {}
        for name in dict.fromkeys(n.rsplit("-", 1)[0] for n in self.dataset._walker):
            speaker, chapter = name.split("-")
            path = Path(self.dataset._path) / speaker / chapter / f"{name}.trans.txt"
            for line in path.read_text().splitlines():
                key, _, text = line.partition(" ")
                lines[key] = normalize(text)
        return [lines[name] for name in self.dataset._walker]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        speaker, chapter, utt = self.dataset._walker[index].split("-")
        folder = Path(self.dataset._path) / speaker / chapter
        audio = folder / f"{speaker}-{chapter}-{utt}{self.dataset._ext_audio}"
        try:
            waveform, _, transcript, *_ = self.dataset[index]
        except (RuntimeError, OSError, ValueError) as err:
            raise ValueError(
                f"the LibriSpeech utterance {audio} cannot be read ({err}); "
                "accepted: FLAC audio with a line in its chapter's .trans.txt"
            ) from err
        text = normalize(transcript)
        if not text:
            raise ValueError(
                f"the LibriSpeech utterance {audio} has an empty transcript in "
                f"{folder / f'{speaker}-{chapter}.trans.txt'}; every utterance needs one"
            )
        return waveform.mean(0), text
