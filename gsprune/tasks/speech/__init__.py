"""Speech recognition task kind (``kind: speech``): Jasper + CTC, scored by WER.

Parts: ``text`` (alphabet, normalisation), ``corpus`` (the embedded corpus:
Asterisk prompts from ``sources`` + speech from ``synthesis``, cached), ``data``
(datasets and length-bucketed batches), ``librispeech`` (the paper-scale
data), ``features`` (log-mel, SpecAugment), ``jasper`` (the model), ``task``
(the registered Task).
"""

from gsprune.tasks.speech import task  # noqa: F401  (registers kind "speech")
