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

    Items are ``(waveform: float32[T], normalised transcript)``; the files must
    be at ``sample_rate`` (LibriSpeech: 16 kHz). A missing ``.trans.txt`` raises
    FileNotFoundError; an utterance without a transcript line, with an empty
    transcript, a FLAC file that cannot be decoded or a wrong sample rate raise
    ValueError; each names the file.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str, sample_rate: int = 16000) -> None:
        import torchaudio

        root = librispeech_folder(data_dir, split).parent.parent
        self.split, self.sample_rate = split, sample_rate
        self.dataset = torchaudio.datasets.LIBRISPEECH(
            str(root), url=split, folder_in_archive="LibriSpeech", download=False
        )
        # torchaudio keeps the utterance names ("<speaker>-<chapter>-<utt>") in _walker.
        self.names: list[str] = list(self.dataset._walker)
        self.ids = [f"{split}/{name}" for name in self.names]
        self._chapters: dict[str, dict[str, str]] = {}

    def _paths(self, index: int) -> tuple[Path, Path]:
        """``(audio file, transcript file)`` of utterance ``index``."""
        speaker, chapter, _ = self.names[index].split("-")
        folder = Path(self.dataset._path) / speaker / chapter
        name = self.names[index]
        return (
            folder / f"{name}{self.dataset._ext_audio}",
            folder / f"{speaker}-{chapter}.trans.txt",
        )

    def transcript(self, index: int) -> str:
        """The normalised transcript of utterance ``index`` (its chapter file is read once)."""
        audio, trans = self._paths(index)
        if str(trans) not in self._chapters:
            if not trans.is_file():
                raise FileNotFoundError(
                    f"the LibriSpeech transcript file {trans} is missing (it must sit beside "
                    f"{audio.name} in the release layout)"
                )
            lines = (line.partition(" ") for line in trans.read_text().splitlines())
            self._chapters[str(trans)] = {key: normalize(text) for key, _, text in lines}
        text = self._chapters[str(trans)].get(self.names[index])
        if not text:
            problem = "has no line" if text is None else "has an empty transcript"
            raise ValueError(
                f"the LibriSpeech utterance {audio} {problem} in {trans}; every utterance "
                "needs a line '<speaker>-<chapter>-<utt> TRANSCRIPT'"
            )
        return text

    def texts(self) -> list[str]:
        """The normalised transcripts in item order (no audio is read)."""
        return [self.transcript(index) for index in range(len(self.names))]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        text = self.transcript(index)
        audio, _ = self._paths(index)
        try:
            waveform, rate, *_ = self.dataset[index]
        except Exception as err:  # the decoder's errors vary (RuntimeError, ValueError, ...)
            raise ValueError(
                f"the LibriSpeech audio file {audio} cannot be read ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); accepted: FLAC audio that "
                "FFmpeg decodes (through torchaudio and TorchCodec)"
            ) from err
        if rate != self.sample_rate:
            raise ValueError(
                f"the LibriSpeech audio file {audio} is at {rate} Hz; task.sample_rate is "
                f"{self.sample_rate}"
            )
        return waveform.mean(0), text
