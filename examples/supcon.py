"""Supervised contrastive learning on scikit-learn's digits: every same-class view is a positive.

    python examples/supcon.py                 # under a minute on 2 CPU cores
    python examples/supcon.py --steps 3       # a smoke test
    python examples/supcon.py --data fashion-mnist --steps 600    # 28x28 clothes, longer

Khosla et al. 2020, "Supervised Contrastive Learning" (the L_out loss). Same loop as SimCLR, but the
loss gets the labels: two views of each image, and every other view of the same digit in the batch
is pulled in too, so the classes form tight clusters (the paper's alternative to cross-entropy).

The last line compares kNN top-1 of the trained encoder, the same encoder untrained, and raw pixels.
"""
import argparse
import copy
import time

import torch

from contrastlab.data import load_images
from contrastlab.eval import embed, knn_top1
from contrastlab.losses import supcon
from contrastlab.models import ProjectionHead, create_encoder
from contrastlab.views import make_views, preset

parser = argparse.ArgumentParser(description="SupCon with an explicit training loop")
parser.add_argument("--steps", type=int, default=150)
parser.add_argument("--data", default="digits", choices=["digits", "fashion-mnist"])
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--device", default="cpu")
args = parser.parse_args()
torch.manual_seed(0)

data = load_images(args.data)                         # digits: x (1348, 1, 8, 8) uint8, y (1348,) in 0..9
x = data.x[:10000].float() / 255                     # the encoder standardises with their mean / std
encoder = create_encoder("small_cnn", in_channels=1, mean=[x.mean().item()], std=[x.std().item()])
untrained = copy.deepcopy(encoder)
model = torch.nn.Sequential(encoder, ProjectionHead(encoder.out_dim, hidden_dim=256, out_dim=64)).to(args.device)
augment = preset(args.data)                           # each dataset has its augmentation preset
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(args.steps, 1))
gen = torch.Generator().manual_seed(0)

start = time.time()
for step in range(args.steps):
    idx = torch.randint(0, len(data.x), (args.batch_size,), generator=gen)
    views = make_views(data.x[idx], augment, n_views=2, generator=gen).to(args.device)  # (B, 2, 1, H, W)
    z = model(views.flatten(0, 1)).view(args.batch_size, 2, -1)                            # (B, 2, D)
    loss = supcon(z, data.y[idx].to(args.device), temperature=0.1)   # positives: same label, any view
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    if step % 50 == 0 or step == args.steps - 1:
        print(f"step {step:4d}  loss {loss.item():.3f}  {time.time() - start:.0f}s")


def knn(net):                                          # frozen features, cosine kNN (k=20) on the test split
    net = net.to(args.device)
    return knn_top1(embed(net, data.x), data.y, embed(net, data.x_test), data.y_test, k=20)


pixels = knn_top1(data.x.flatten(1).float(), data.y, data.x_test.flatten(1).float(), data.y_test, k=20)
print(f"knn_top1 trained={knn(encoder):.3f} untrained={knn(untrained):.3f} pixels={pixels:.3f}")
