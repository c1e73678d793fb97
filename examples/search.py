"""Search: train a text encoder on WordNet's reverse dictionary, index every synset, query the index.

    python examples/search.py                           # about a minute on 2 CPU cores
    python examples/search.py --steps 3 --docs 5000     # a smoke test over 5,000+ synsets

The query is a definition ("a domestic animal that barks"), the document a synset's words and examples
("dog, domestic dog, Canis familiaris; ..."), from WordNet 3.0 (Miller 1995). A bag-of-subwords encoder
is trained for a minute with in-batch negatives (Henderson et al. 2017, "Efficient Natural Language
Response Suggestion for Smart Reply"), then all 117,659 synsets go into a FAISS index (Johnson et al.
2019; `contrastlab.search.VectorIndex`, exact inner product over unit vectors), which is saved, loaded
back, and searched with the 2,000 held-out definitions.

The last line gives recall@10 of the held-out definitions over all 117,659 synsets (or `--docs`) for
the trained encoder, BM25, and chance.
"""
import argparse
import tempfile
import time

import torch

from contrastlab.data import RetrievalData, load_text
from contrastlab.eval import bm25_rank, retrieval_metrics
from contrastlab.losses import multiple_negatives_ranking
from contrastlab.models.text import TextTokenizer, create_text_encoder, encode_texts
from contrastlab.search import VectorIndex

parser = argparse.ArgumentParser(description="WordNet reverse-dictionary search with an explicit training loop")
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--docs", type=int, default=0, help="index only this many synsets (plus the held-out "
                    "definitions' own); 0: all 117,659")
parser.add_argument("--device", default="cpu")
args = parser.parse_args()
torch.manual_seed(0)

data = load_text("wordnet")                               # 111,520 training (definition, synset) pairs
pairs, test = data.train, data.test                       # test: 2,000 definitions over 117,659 documents
if args.docs:                                             # a smaller corpus for a quick try: fewer distractors
    keep = sorted(set(range(args.docs)) | {d for rel in test.relevant for d in rel})
    where = {d: i for i, d in enumerate(keep)}
    test = RetrievalData(test.queries, [test.corpus[d] for d in keep], [[where[d] for d in r] for r in test.relevant],
                         doc_ids=[test.doc_ids[d] for d in keep])
tokenizer = TextTokenizer.train(pairs.texts()[::4], vocab_size=16_000, max_length=32)   # a quarter will do
encoder = create_text_encoder("bag", tokenizer=tokenizer, dim=128).to(args.device)
opt = torch.optim.AdamW(encoder.parameters(), lr=4e-3, weight_decay=1e-4, fused=True)   # fused: big tables
gen = torch.Generator().manual_seed(0)


def embed(texts):                                         # list of B strings -> (B, 128), with gradients
    return encoder({k: v.to(args.device) for k, v in encoder.tokenize(texts).items()})


start = time.time()
for step in range(args.steps):
    idx = torch.randint(0, len(pairs), (args.batch_size,), generator=gen).tolist()
    definitions, synsets = embed([pairs.anchors[i] for i in idx]), embed([pairs.positives[i] for i in idx])
    loss = multiple_negatives_ranking(definitions, synsets, temperature=0.05, symmetric=True)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == args.steps - 1:
        print(f"step {step:4d}  loss {loss.item():.3f}  {time.time() - start:.0f}s")

vectors = encode_texts(encoder, test.corpus, batch_size=1024).numpy()          # (N, 128), unit rows
index = VectorIndex.build(vectors, test.doc_ids, texts=test.corpus, kind="exact")
with tempfile.TemporaryDirectory() as folder:             # an index folder: what `contrastlab index` writes
    index.save(f"{folder}/index")
    index = VectorIndex.load(f"{folder}/index")
print(index)

queries = encode_texts(encoder, test.queries).numpy()                          # (2000, 128)
scores, ids = index.search(queries, 10)                   # (2000, 10) cosine, 2000 lists of 10 synset ids
for q in range(3):
    print(f"{test.queries[q]!r} -> " + " | ".join(index.text_of(index.position[i])[:30] for i in ids[q][:3]))

ranked = torch.tensor([[index.position[i] for i in row] for row in ids])   # ids -> corpus positions
trained = retrieval_metrics(ranked, test.relevant, ks=(10,))["recall@10"]
bm25 = retrieval_metrics(bm25_rank(test, k=10), test.relevant, ks=(10,))["recall@10"]
print(f"recall@10 trained={trained:.3f} bm25={bm25:.3f} chance={10 / len(test.corpus):.5f}")
