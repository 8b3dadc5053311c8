"""Benchmark: embedding throughput of `fbm_rank.embed` against a naive loop, on the same photos and model.

Both embed the same real photos (the data set's cleaned 256 px squares in `images/`) with the same model, an
efficientnet_lite0 category model (ImageNet body and an untrained head unless --model is given; the head's
weights do not change the cost), at the default layer, and must give the same vectors.

- naive loop: for each photo in turn, `Image.open`, `backbones.photo_transform`, then the model on a batch of
  ONE photo, in the default (contiguous NCHW) memory layout, with autograd on (no `torch.inference_mode`),
  then the same layer and L2 normalisation as `embed`.
- fbm_rank: `bs` photos at a time through `embed.embed_batch` (channels_last memory layout, `inference_mode`).

Prints photos/s of both, their ratio and the 1-minute load average before and after each, measured in the same
run: the ratio depends on the machine and on how busy it is, so quote it with the load average.

    python bench/bench_embed.py [--n 256] [--bs 64] [--model MODEL_DIR]
"""
import argparse, os, tempfile, time
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F
from PIL import Image
from fbm_rank.paths import marketplace_dir
from fbm_rank.labels import ROOT_CATEGORIES
from fbm_rank.backbones import DEFAULT_ARCH, make_model, save_model, load_model, photo_transform
from fbm_rank.embed import embed_batch, DEFAULT_LAYER, EMBEDDING_LAYERS

def naive_vector(model, x):
    "The default layer's vector of one photo, computed as a plain loop would: autograd on, default layout."
    f = model[0](x); hidden = model[1][:-1](f)
    v = EMBEDDING_LAYERS[DEFAULT_LAYER](F.adaptive_avg_pool2d(f, 1).flatten(1), hidden, F.softmax(model[1][-1](hidden), dim=1))
    return F.normalize(v, dim=1).detach().numpy()

def load(): return os.getloadavg()[0]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=256, help='photos to embed')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--model', type=Path, help='a trained model folder (default: an untrained head on ImageNet lite0)')
    a = p.parse_args()
    photos = sorted((marketplace_dir()/'images').glob('*.jpg'))[:a.n]
    with tempfile.TemporaryDirectory() as d:
        model_dir = a.model
        if model_dir is None:
            model_dir = Path(d)/'model'
            save_model(make_model(DEFAULT_ARCH, len(ROOT_CATEGORIES)), model_dir, dict(arch=DEFAULT_ARCH, vocab=list(ROOT_CATEGORIES)))
        model, desc = load_model(model_dir)
        tfm = photo_transform(desc)
        load_naive = load(); t = time.perf_counter()
        naive = [naive_vector(model, tfm(Image.open(f)).unsqueeze(0)) for f in photos]
        naive_s = time.perf_counter() - t; load_naive = (load_naive, load())
        fast_model = model.to(memory_format=torch.channels_last)
        load_ours = load(); t = time.perf_counter()
        ours = [embed_batch(fast_model, torch.stack([tfm(Image.open(f)) for f in photos[i:i+a.bs]])) for i in range(0, len(photos), a.bs)]
        ours_s = time.perf_counter() - t; load_ours = (load_ours, load())
    diff = np.abs(np.concatenate(naive) - np.concatenate(ours)).max()
    print(f'{len(photos)} photos, layer {DEFAULT_LAYER}, batch {a.bs}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} cores (max difference {diff:.1e})')
    print(f'naive loop : {len(photos)/naive_s:7.1f} photos/s  (load average {load_naive[0]:.2f} -> {load_naive[1]:.2f})')
    print(f'fbm_rank   : {len(photos)/ours_s:7.1f} photos/s  (load average {load_ours[0]:.2f} -> {load_ours[1]:.2f})')
    print(f'ratio      : {naive_s/ours_s:7.2f}x')

if __name__ == '__main__': main()
