"""Translation (DESIGN §7): GNMT scored by BLEU, at two scales that share one data path.

- ``data``: the public data API (``prepare_ding``, ``prepare_wmt16``,
  ``load_corpus``, ``Corpus``, ``translation_loader``);
- ``ding``: sentence and phrase pairs of the Ding dictionary (Debian
  ``trans-de-en``) and their deterministic split (embedded, ``task=translation``);
- ``wmt16``: the raw WMT16 English-German files (paper scale, ``task=wmt``);
- ``text``: the one text normalization;
- ``prepare``: sentencepiece + fairseq-preprocess into a corpus directory,
  cached, locked and renamed into place whole;
- ``corpus``: the prepared directory's layout, its checks and its reader.

Nothing heavy is imported here.
"""
