"""Benchmark: train the category model on the real marketplace data on this machine's CPU.

Prepares the real data once (reused from the cache folder on later runs), caches efficientnet_lite0's
frozen features, trains the top of the backbone + head (`train(..., mode='cached')`) and evaluates on the
product-level validation split. Prints the wall time of each step and the validation accuracy per photo and
per product, with the load average. Goal: >= 55% per photo, end to end in under 20 minutes on a 2-core CPU.

    python bench/bench_train.py                 # reuse prepared photos and cached features if there
    python bench/bench_train.py --fresh-cache   # recompute the features (end-to-end timing without prepare)
"""
import argparse, inspect, shutil, time
from pathlib import Path
from fbm_rank.paths import read_json
from fbm_rank.train import train
from fbm_rank.features import cache_features
from fbm_rank.photo_model import train_cached
from fbm_rank.backbones import DEFAULT_ARCH
from fbm_rank.evaluate import format_metrics
from common import Timer, load, real_prepared

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--prepared', type=Path, default=Path('~/.cache/fbm_rank/bench/prepared').expanduser())
    p.add_argument('--out', type=Path, default=Path('~/.cache/fbm_rank/bench/model').expanduser())
    p.add_argument('--arch', default=DEFAULT_ARCH)
    p.add_argument('--size', type=int, default=None)
    p.add_argument('--epochs', type=int, default=None, help="train()'s default when omitted")
    p.add_argument('--views', default=None, help="comma-separated cached views, e.g. plain,flip; train()'s default when omitted")
    p.add_argument('--fresh-cache', action='store_true', help='delete cached features first')
    a = p.parse_args()
    steps, start = {}, time.perf_counter()   # step -> (seconds, load average before and after)
    with Timer() as t: real_prepared(a.prepared, size=256, show_progress=True)
    steps['prepare'] = t.seconds, t.loads()
    if a.fresh_cache: shutil.rmtree(a.prepared/'cache', ignore_errors=True)
    kw = {k: v for k, v in dict(epochs=a.epochs, size=a.size).items() if v is not None}
    if a.views: kw['views'] = tuple(a.views.split(','))
    views = kw.get('views', inspect.signature(train_cached).parameters['views'].default)
    with Timer() as t:
        for v in views: cache_features(a.prepared, a.arch, a.size, view=v)
    steps['cache features'] = t.seconds, t.loads()
    with Timer() as t: metrics = train(a.prepared, a.out, a.arch, 'cached', **kw)
    secs = read_json(a.out/'model.json')['training']['seconds']
    steps['train'] = secs['train_s'], t.loads()
    steps['evaluate'] = secs.get('evaluate_s', float('nan')), t.loads()
    steps['total'] = time.perf_counter() - start, f'load {load()} at the end'
    print(format_metrics(metrics))
    print(f"settings: {read_json(a.out/'model.json')['training']}")
    for k, (v, loads) in steps.items(): print(f'{k:>15}: {v/60:6.1f} min  ({loads})')
    print(f"validation accuracy per photo {metrics['accuracy']:.1%}, per product {metrics['product_accuracy']:.1%}")

if __name__ == '__main__': main()
