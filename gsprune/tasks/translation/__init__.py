"""Translation (DESIGN §7): GNMT scored by BLEU, at two scales that share one data path.

- ``data``: the public data API (``prepare_ding``, ``prepare_wmt16``,
  ``load_corpus``, ``Corpus``, ``translation_loader``);
- ``ding``: sentence and phrase pairs of the Ding dictionary (Debian
  ``trans-de-en``) and their deterministic split (embedded, ``task=translation``);
- ``wmt16``: the raw WMT16 English-German files (paper scale, ``task=wmt``);
- ``text``: the one text normalization;
- ``prepare``: sentencepiece + fairseq-preprocess into a corpus directory,
  cached, locked and renamed into place whole;
- ``corpus``: the prepared directory's layout, its checks and its reader;
- ``gnmt``: the GNMT model, registered with fairseq;
- ``task``: the Task (kind ``translation``): loss, beam search, BLEU, outputs.

Importing this package imports fairseq once, without two side effects of
``import fairseq`` that break a Hydra application such as gsprune: fairseq
stores its own config nodes in Hydra's global ConfigStore (a primary
``config`` and a ``task`` group with a node named ``translation``), which Hydra
would then match against gsprune's ``conf/config.yaml`` and
``conf/task/translation.yaml`` ("Key 'name' not in 'TranslationConfig'"); and
one of its modules calls ``logging.basicConfig(level=DEBUG)``. Both are undone
right after the import (gsprune uses fairseq's data, models and generator, not
its Hydra configs), so every later ``import fairseq...`` is a cached no-op.
"""

from __future__ import annotations

import logging
from typing import Any


def _tree_copy(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of the ConfigStore's nested group dicts (the config nodes themselves shared)."""
    return {
        key: _tree_copy(value) if isinstance(value, dict) else value for key, value in tree.items()
    }


def _import_fairseq() -> None:
    from hydra.core.config_store import ConfigStore

    store, root = ConfigStore.instance(), logging.getLogger()
    repo, handlers, level = _tree_copy(store.repo), list(root.handlers), root.level
    logging.disable(logging.WARNING)  # its import-time notices (e.g. "install tensorboardX")
    try:
        import fairseq  # noqa: F401
    finally:
        logging.disable(logging.NOTSET)
        store.repo = repo
        root.handlers[:] = handlers
        root.setLevel(level)
        # fairseq logs every dataset it opens at INFO; gsprune's own log says what matters.
        logging.getLogger("fairseq").setLevel(logging.WARNING)


_import_fairseq()
