"""MoCo v2 on scikit-learn's digits: queries from the encoder, keys from its momentum copy, a queue of past keys.

    python examples/moco.py                   # under a minute on 2 CPU cores
    python examples/moco.py --steps 3         # a smoke test
    python examples/moco.py --data fashion-mnist --queue-size 4096 --steps 1000   # 28x28 clothes, longer

He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning"; Chen et al. 2020
(v2: projection head, stronger augmentation). Each step: two views, the query net on view 1, the
momentum (EMA) key net on view 2 without gradients, InfoNCE against the queue, then the EMA update
and the new keys into the queue.

The last line compares kNN top-1 of the trained encoder, the same encoder untrained, and raw pixels.
"""
import argparse
import copy
import time

import torch
import torch.nn.functional as F

from contrastlab.data import load_images
from contrastlab.eval import embed, knn_top1
from contrastlab.losses import info_nce
from contrastlab.models import MomentumEncoder, NegativeQueue, ProjectionHead, create_encoder
from contrastlab.views import make_views, preset

parser = argparse.ArgumentParser(description="MoCo v2 with an explicit training loop")
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--data", default="digits", choices=["digits", "fashion-mnist"])
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--queue-size", type=int, default=1024)
parser.add_argument("--device", default="cpu")
args = parser.parse_args()
torch.manual_seed(0)

data = load_images(args.data)                         # digits: x (1348, 1, 8, 8) uint8, 449 test images
x = data.x[:10000].float() / 255                     # the encoder standardises with their mean / std
encoder = create_encoder("small_cnn", in_channels=1, mean=[x.mean().item()], std=[x.std().item()])
untrained = copy.deepcopy(encoder)
query_net = torch.nn.Sequential(encoder, ProjectionHead(encoder.out_dim, out_dim=128)).to(args.device)
key_net = MomentumEncoder(query_net, momentum=0.99)    # a frozen EMA copy: no gradients, update() moves it
queue = NegativeQueue(size=args.queue_size, dim=128).to(args.device)
augment = preset(args.data)                           # each dataset has its augmentation preset
opt = torch.optim.AdamW(query_net.parameters(), lr=1e-3, weight_decay=1e-4)
gen = torch.Generator().manual_seed(0)

start = time.time()
for step in range(args.steps):
    idx = torch.randint(0, len(data.x), (args.batch_size,), generator=gen)
    views = make_views(data.x[idx], augment, n_views=2, generator=gen).to(args.device)  # (B, 2, 1, H, W)
    q = F.normalize(query_net(views[:, 0]), dim=1)                                       # (B, 128)
    perm = torch.randperm(args.batch_size, generator=gen)           # shuffled BN: a key's batch statistics
    k = torch.cat([key_net(c) for c in views[perm, 1].chunk(4)])[perm.argsort()]   # never hold its query
    k = F.normalize(k, dim=1)                                                            # (B, 128)
    negatives = queue.negatives() if len(queue) else None           # empty at first: in-batch negatives
    loss = info_nce(q, k, negatives, temperature=0.2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    key_net.update(query_net)                                        # key <- 0.99 key + 0.01 query
    queue.enqueue(k)                                                 # the oldest keys drop out
    if step % 50 == 0 or step == args.steps - 1:
        print(f"step {step:4d}  loss {loss.item():.3f}  queue {len(queue)}  {time.time() - start:.0f}s")


def knn(features):                                    # cosine kNN (k=20) of the test split on the training set
    return knn_top1(features(data.x), data.y, features(data.x_test), data.y_test, k=20)


trained = knn(lambda x: embed(encoder, x))
baseline = knn(lambda x: embed(untrained.to(args.device), x))
pixels = knn(lambda x: x.flatten(1).float())
print(f"knn_top1 trained={trained:.3f} untrained={baseline:.3f} pixels={pixels:.3f}")
