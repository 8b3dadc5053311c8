"""Benchmark: embedding throughput of `fbm_rank.embed` against the naive loop (one photo at a time).

Both embed the same real photos (cleaned 256 px squares of the marketplace data) with the same model:
an efficientnet_lite0 category model (ImageNet body; the head's weights do not change the cost).
The naive loop is what published versions of this project do: open a photo, transform it, run the model
on a batch of one, in a loop. Prints photos/s of both and the ratio, measured in the same run.

    python bench/bench_embed.py [--n 256] [--model MODEL_DIR]
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from fbm_rank.paths import marketplace_dir
from fbm_rank.labels import ROOT_CATEGORIES
from fbm_rank.backbones import make_model, save_model, load_model, photo_transform
from fbm_rank.embed import embed_batch, DEFAULT_LAYER, EMBEDDING_LAYERS

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
            save_model(make_model('efficientnet_lite0', len(ROOT_CATEGORIES)), model_dir,
                       dict(arch='efficientnet_lite0', vocab=list(ROOT_CATEGORIES)))
        model, desc = load_model(model_dir)
        tfm = photo_transform(desc)
        # naive: one photo at a time, default memory layout, autograd on
        t = time.perf_counter()
        naive = []
        for f in photos:
            x = tfm(Image.open(f)).unsqueeze(0)
            naive.append(torch.nn.functional.normalize(EMBEDDING_LAYERS[DEFAULT_LAYER](model, x), dim=1).detach().numpy())
        naive_s = time.perf_counter() - t
        # fbm_rank: batched, channels_last, inference mode
        fast_model = model.to(memory_format=torch.channels_last)
        t = time.perf_counter()
        ours = [embed_batch(fast_model, torch.stack([tfm(Image.open(f)) for f in photos[i:i+a.bs]])) for i in range(0, len(photos), a.bs)]
        ours_s = time.perf_counter() - t
    diff = np.abs(np.concatenate(naive) - np.concatenate(ours)).max()
    print(f'{len(photos)} photos, layer {DEFAULT_LAYER}, {torch.get_num_threads()} threads (max difference {diff:.1e})')
    print(f'naive loop : {len(photos)/naive_s:7.1f} photos/s')
    print(f'fbm_rank   : {len(photos)/ours_s:7.1f} photos/s')
    print(f'ratio      : {naive_s/ours_s:7.2f}x')

if __name__ == '__main__': main()
