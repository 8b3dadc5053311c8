#!/usr/bin/env python
"""Embedding photos on one machine (`embed.embed_photos`) against on a local Ray cluster (`scale.embed_photos_ray`).

Both embed the same prepared folder with the same model (the given one, or an ImageNet EfficientNet-Lite0 with an
untrained head: the arithmetic is the work, not what the head learned). The Ray run starts its own local cluster
of `--workers` CPUs, one model per worker, each worker on one thread; the local run uses torch's threads on all
cores. Printed: photos per second of each (the Ray figure with and without the cluster's start-up), the largest
difference between the two sets of vectors, and the load average with every figure. On a machine of few cores
parity is the best Ray can do: it adds scheduling and the transfer of every vector to the driver, and gains only
when there are more machines.

    .venv/bin/python bench/bench_ray.py                                   # the demo photos, repeated to 2,000
    .venv/bin/python bench/bench_ray.py --prepared PREPARED --model MODEL --workers 2
"""
import argparse, os, tempfile
from pathlib import Path
import numpy as np, pandas as pd
from common import Timer, load, demo_prepared, untrained_model

def repeated_demo(prepared:Path, n:int, size:int)->Path:
    "The demo marketplace prepared at `size` in `prepared`, its training table repeated to `n` photos (new ids, the same files)."
    demo_prepared(prepared, size)
    t = pd.read_parquet(prepared/'training.parquet')
    reps = -(-n // len(t))
    big = pd.concat([t.assign(image_id=t.image_id + f'-{r}') for r in range(reps)], ignore_index=True)[:n]
    big.to_parquet(prepared/'training.parquet', index=False)
    return prepared

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--prepared'); p.add_argument('--model')
    p.add_argument('--n', type=int, default=2000, help='demo photos (repeated) when no --prepared')
    p.add_argument('--size', type=int, default=224); p.add_argument('--workers', type=int, default=os.cpu_count())
    p.add_argument('--bs', type=int, default=32)
    a = p.parse_args()
    import torch, ray
    from fbm_rank.embed import embed_photos, read_embeddings
    from fbm_rank.paths import read_json
    from fbm_rank.scale import embed_photos_ray, start_local_ray
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        prepared = Path(a.prepared) if a.prepared else repeated_demo(work/'prepared', a.n, a.size)
        model = a.model or untrained_model(work/'model', read_json(prepared/'categories.json')['vocab'], 'efficientnet_lite0', a.size)
        n = len(pd.read_parquet(prepared/'training.parquet'))
        print(f'{n:,} photos of {prepared}, model {model}, {a.workers} Ray workers, torch threads {torch.get_num_threads()}; load {load()}')
        with Timer() as local: embed_photos(model, prepared, work/'local', bs=a.bs, show_progress=False)
        print(f'local: {local.seconds:.1f} s, {n/local.seconds:.1f} photos/s; load {load()}', flush=True)
        with Timer() as up: start_local_ray(a.workers)
        with Timer() as remote: embed_photos_ray(model, prepared, work/'ray', bs=a.bs, workers=a.workers, show_progress=False)
        ray.shutdown()
        print(f'ray:   {remote.seconds:.1f} s, {n/remote.seconds:.1f} photos/s ({n/(remote.seconds + up.seconds):.1f} with the '
              f'{up.seconds:.0f} s cluster start); {local.seconds/remote.seconds:.2f}x local; load {load()}', flush=True)
        (v1, i1, _), (v2, i2, _) = read_embeddings(work/'local'), read_embeddings(work/'ray')
        print(f'same ids in the same order: {i1.equals(i2)}; largest difference {np.abs(v1 - v2).max():.2e}')

if __name__ == '__main__': main()
