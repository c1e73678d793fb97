"""CLIP on emoji: an image tower and a text tower trained so that each image lands on its name.

    python examples/clip.py                   # under a minute on 2 CPU cores
    python examples/clip.py --steps 3         # a smoke test

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision". Noto Color
Emoji images (16 px) and their English names; the 274 held-out emoji (split by base emoji) are never
trained on. The text tower starts from wordllama's pretrained token table (in its wheel, no download)
and is fine-tuned; the image tower is a small CNN from scratch. Each step: a batch of (image, name)
pairs, both towers plus a linear projection each, CLIP's symmetric cross-entropy with a learnable
temperature, one optimizer step.

The last line gives held-out image -> name recall@10 (among the 274 held-out names) for the trained
towers, the same towers before training (wordllama's table as shipped, the rest at random), and chance.
"""
import argparse
import copy
import time

import torch

from contrastlab.data import load_image_text
from contrastlab.eval import embed, rank, retrieval_metrics
from contrastlab.losses import LearnableTemperature, clip_loss
from contrastlab.models import create_encoder
from contrastlab.models.text import WordLlamaEncoder, encode_texts
from contrastlab.optim import param_groups
from contrastlab.views import Augment

parser = argparse.ArgumentParser(description="CLIP on emoji with an explicit training loop")
parser.add_argument("--steps", type=int, default=150)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--device", default="cpu")
args = parser.parse_args()
torch.manual_seed(0)

data = load_image_text("emoji", size=16, languages=("en",))   # images: (1870, 3, 16, 16) uint8
train_rows, names = data.pairs("en")                          # 1596 training images and their names
test_rows, test_names = data.pairs("en", test=True)           # 274 held out
x = data.images[train_rows].float() / 255                     # the image tower standardises with these
towers = torch.nn.ModuleDict({
    "image": create_encoder("small_cnn", in_channels=3, mean=x.mean((0, 2, 3)).tolist(), std=x.std((0, 2, 3)).tolist()),
    "text": WordLlamaEncoder(trainable=True),                  # token dict -> (B, 256)
    "image_proj": torch.nn.Linear(640, 128, bias=False),
    "text_proj": torch.nn.Linear(256, 128, bias=False),
    "scale": LearnableTemperature(initial_temperature=0.07, max_scale=100.0),
}).to(args.device)
untrained = copy.deepcopy(towers)
# random crops only: an emoji's colour and its left/right are part of what its name means
augment = Augment(crop_scale=(0.25, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
opt = torch.optim.AdamW(param_groups(towers, weight_decay=1e-4), lr=2e-3)   # no decay on the temperature
gen = torch.Generator().manual_seed(0)


def encode(m, images, texts):                                 # (B, 3, H, W) float, B names -> (B, 128) each
    tokens = {k: v.to(args.device) for k, v in m["text"].tokenize(texts).items()}
    return m["image_proj"](m["image"](images)), m["text_proj"](m["text"](tokens))


start = time.time()
for step in range(args.steps):
    pick = torch.randperm(len(train_rows), generator=gen)[:args.batch_size]
    images = augment(data.images[train_rows[pick]], generator=gen).to(args.device)
    img, txt = encode(towers, images, [names[i] for i in pick])
    loss = clip_loss(img, txt, logit_scale=towers["scale"]())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == args.steps - 1:
        print(f"step {step:4d}  loss {loss.item():.3f}  temperature {towers['scale'].temperature:.3f}  "
              f"{time.time() - start:.0f}s")


def recall_at_10(m):                                          # held-out image i -> its own name among all 274
    image = embed(torch.nn.Sequential(m["image"], m["image_proj"]), data.images[test_rows])       # (274, 128)
    with torch.no_grad():
        text = m["text_proj"](encode_texts(m["text"], test_names, normalize=False).to(args.device))  # (274, 128)
    ranked = rank(image, text, k=10)                                                            # (274, 10)
    return retrieval_metrics(ranked, [[i] for i in range(len(test_names))], ks=(10,))["recall@10"]


print(f"recall@10 trained={recall_at_10(towers):.3f} untrained={recall_at_10(untrained):.3f} "
      f"chance={10 / len(test_names):.3f}")
