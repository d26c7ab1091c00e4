"""prepare_wmt16 and scripts/prepare_wmt16.py on a few hundred lines in the real WMT16 layout.

The text is real (German-English sentence pairs of the Ding dictionary), laid
out as the WMT16 archives unpack, with the kinds of dirt the real files have:
an empty line pair, a carriage return and a no-break space inside a line,
curly quotes, and SGML entities in the newstest files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gsprune.tasks.translation import wmt16
from gsprune.tasks.translation.corpus import load_corpus
from gsprune.tasks.translation.data import prepare_wmt16
from gsprune.tasks.translation.text import normalize

from .conftest import load_script, needs_ding, write

pytestmark = [needs_ding, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
TINY = {"vocab_size": 300}


@pytest.fixture(scope="module")
def raw_plain(tmp_path_factory, raw_sgm, sentences) -> Path:
    """The same data with plain-text newstest files."""
    raw = Path(shutil.copytree(raw_sgm, tmp_path_factory.mktemp("wmt16-plain") / "raw"))
    shutil.rmtree(raw / "dev")
    for name, (a, b) in (("newstest2015", (350, 380)), ("newstest2014", (380, 420))):
        for lang in ("en", "de"):
            write(raw / f"{name}.{lang}", sentences[lang][a:b])
    return raw


@pytest.fixture(scope="module")
def script_run(tmp_path_factory, raw_sgm):
    """scripts/prepare_wmt16.py RAW --out OUT --vocab-size 300, run in this process."""
    out = tmp_path_factory.mktemp("wmt16-out") / "wmt16"
    script = load_script()
    return script, out, script.main([str(raw_sgm), "--out", str(out), "--vocab-size", "300"])


def test_script_prepares_the_sgm_layout(script_run, sentences, capsys):
    script, out, status = script_run
    assert status == 0
    corpus = load_corpus(out, "en", "de")
    meta = corpus.meta()
    assert meta["counts"]["valid"] == 30 and meta["counts"]["test"] == 40
    assert meta["reading"]["train"] == {"pairs": 351, "empty": 1}
    assert sum(meta["filtered"]["train"].values()) == 350
    assert meta["counts"]["train"] == meta["filtered"]["train"]["kept"] >= 330
    assert meta["settings"]["vocab_size"] == 300 and meta["settings"]["model_type"] == "bpe"
    for lang in ("en", "de"):
        assert corpus.raw("test", lang) == [normalize(s) for s in sentences[lang][380:420]]
        assert corpus.raw("valid", lang) == [normalize(s) for s in sentences[lang][350:380]]
    assert corpus.raw("test", "de")[20] == normalize(sentences["de"][400])
    assert corpus.raw("test", "de")[20].startswith('"')  # „ becomes "
    assert corpus.raw("test", "en")[21].endswith('" & more')  # &quot; and &amp; unescaped
    train_de = corpus.raw("train", "de")
    assert "\r" not in "".join(train_de) and "\u00a0" not in "".join(train_de)
    assert normalize(sentences["de"][160]) in train_de
    batch = next(
        iter(corpus.dataset("test").collater([corpus.dataset("test")[i] for i in range(4)]))
    )
    assert batch in ("id", "nsentences", "ntokens", "net_input", "target")


def test_script_output_and_rerun(script_run, raw_sgm, capsys):
    script, out, _ = script_run
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert script.main([str(raw_sgm), "--out", str(out), "--vocab-size", "300"]) == 0
    printed = capsys.readouterr().out
    assert (out / "meta.json").stat().st_mtime_ns == stamp  # found prepared, not redone
    assert f"WMT16 en->de corpus in {out.resolve()}" in printed
    assert "newstest2014-deen-src.en.sgm" in printed and "test: 40 sentence pairs" in printed
    assert f"task.data_dir={out}" in printed


def test_plain_newstest_files_give_the_same_corpus(script_run, raw_plain):
    _, sgm_out, _ = script_run
    out = raw_plain.parent / "out"
    corpus = prepare_wmt16(raw_plain, out, TINY)
    names = sorted(p.name for p in sgm_out.iterdir())
    assert names == sorted(p.name for p in out.iterdir())
    for name in names:
        if name != "meta.json":  # which files were read differs
            assert (out / name).read_bytes() == (sgm_out / name).read_bytes(), name
    assert corpus.meta()["source"]["files"]["newstest2014"]["de"].endswith("newstest2014.de")


def test_changed_settings_prepare_again_in_place(tmp_path, raw_plain):
    out = tmp_path / "wmt16"
    first = prepare_wmt16(raw_plain, out, TINY)
    again = prepare_wmt16(raw_plain, out, {"vocab_size": 200})
    assert again.root == first.root and again.meta()["settings"]["vocab_size"] == 200
    assert len(again.dictionary()) <= 201
    assert sorted(p.name for p in tmp_path.iterdir()) == [".wmt16.lock", "wmt16"]


def test_missing_raw_files_named_in_one_paragraph(tmp_path, raw_sgm, capsys):
    raw = Path(shutil.copytree(raw_sgm, tmp_path / "raw"))
    (raw / "commoncrawl.de-en.de").unlink()
    (raw / "dev" / "newstest2014-deen-ref.de.sgm").unlink()
    out = tmp_path / "out"
    assert load_script().main([str(raw), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert message.startswith("prepare_wmt16: ") and message.count("\n") == 1
    assert "commoncrawl.de-en.de, newstest2014.de (or newstest2014-*-{src,ref}.de.sgm)" in message
    assert "dev.tgz" in message
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        wmt16.find_raw_files(tmp_path / "nowhere")


def test_bad_raw_files_and_output_dir(tmp_path, raw_sgm):
    raw = Path(shutil.copytree(raw_sgm, tmp_path / "raw"))
    (raw / "dev" / "newstest2015-ende-ref.de.sgm").write_text("")
    with pytest.raises(ValueError, match="empty WMT16 file.*newstest2015-ende-ref.de.sgm"):
        prepare_wmt16(raw, tmp_path / "out", TINY)
    raw = Path(shutil.copytree(raw_sgm, tmp_path / "raw2"))
    with open(raw / "commoncrawl.de-en.en", "a") as handle:
        handle.write("One more line.\n")
    with pytest.raises(ValueError, match=r"commoncrawl.de-en.de \(100\), .*en \(101\); expected"):
        prepare_wmt16(raw, tmp_path / "out", TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "raw2"]  # nothing written
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not a corpus prepared by gsprune"):
        prepare_wmt16(raw_sgm, tmp_path / "mine", TINY)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unknown wmt setting"):
        prepare_wmt16(raw_sgm, tmp_path / "out", {"phrases": True})
