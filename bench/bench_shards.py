#!/usr/bin/env python
"""Building the photo index from embedding shards (streamed, `index.build_index_from`) against in one piece.

The photos are synthetic embeddings (`fbm_rank.demo.synthetic_embeddings`), written once as one embedding folder
and once as `--shards` folders. Each build runs in its own process, so that its memory is its own:
- one piece: `embed.read_embeddings` of the one folder, then `index.build_index` (the vectors in memory);
- shards: `index.build_index_from` over the shard folders (memory-mapped, added a piece at a time).
Printed per build: seconds, peak RSS (VmHWM), peak anonymous memory (RssAnon, sampled every 20 ms: RSS less the
file pages of the memory maps, which the kernel can drop), the index's nprobe and tuned recall@10, and recall@10 of
1,000 held-out photos against exact search. The load average is printed with every figure.

    .venv/bin/python bench/bench_shards.py                       # 300,000 x 1,280-d photos, 6 shards
    .venv/bin/python bench/bench_shards.py --n 1000000 --shards 10
"""
import argparse, json, os, subprocess, sys, tempfile, threading, time
from pathlib import Path
import numpy as np
from common import Timer, load, proc_status

def child(mode, work, out):
    "Build one index in this process; print its figures as JSON."
    from fbm_rank.embed import read_embeddings
    from fbm_rank.index import build_index, build_index_from, save_index
    peak, done = [0], threading.Event()
    def sample():
        while not done.is_set(): peak[0] = max(peak[0], proc_status('RssAnon')); time.sleep(0.02)
    threading.Thread(target=sample, daemon=True).start()
    with Timer() as built:
        if mode == 'one':
            v, ids, meta = read_embeddings(work/'one')
            index = build_index(v, ids, kind='ivf'); save_index(index, out)
        else: index = build_index_from(sorted(work.glob('shard*')), out, kind='ivf')
    done.set()
    print(json.dumps(dict(seconds=round(built.seconds, 1), peak_rss_gb=round(proc_status('VmHWM')/1e9, 2), peak_anon_gb=round(peak[0]/1e9, 2),
                          nprobe=index.meta['params']['nprobe'], tuned_recall=index.meta['params']['recall_at_10'])))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=300_000); p.add_argument('--dim', type=int, default=1280)
    p.add_argument('--shards', type=int, default=6); p.add_argument('--queries', type=int, default=1000)
    p.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return child(a.child[0], Path(a.child[1]), Path(a.child[2]))
    from fbm_rank.demo import synthetic_embeddings
    from fbm_rank.embed import write_embeddings
    from fbm_rank.evaluate import exact_search, neighbour_recall
    from fbm_rank.index import load_index, search_rows
    with tempfile.TemporaryDirectory(dir=os.environ.get('TMPDIR', '/tmp')) as d:
        work = Path(d)
        v, ids = synthetic_embeddings(a.n + a.queries, dim=a.dim, seed=3)
        q_rows = np.sort(np.random.default_rng(0).choice(len(v), a.queries, replace=False))
        keep = np.setdiff1d(np.arange(len(v)), q_rows)
        queries, v, ids = v[q_rows].copy(), v[keep], ids.iloc[keep].reset_index(drop=True)
        meta = {'model': 'synthetic', 'layer': 'pooled'}
        write_embeddings(v, ids, meta, work/'one')
        for j, rows in enumerate(np.array_split(np.arange(len(v)), a.shards)):
            write_embeddings(v[rows], ids.iloc[rows], meta, work/f'shard{j:03d}')
        exact = exact_search(queries, v, 10)[1]
        print(f'{a.n:,} photos x {a.dim}-d ({v.nbytes/1e9:.2f} GB of vectors), {a.shards} shards, {a.queries} held-out queries; load {load()}')
        del v
        for mode in ('one', 'shards'):
            r = subprocess.run([sys.executable, __file__, '--child', mode, str(work), str(work/f'index-{mode}')],
                               capture_output=True, text=True)
            if r.returncode: print(r.stderr[-2000:]); continue
            fig = json.loads(r.stdout.strip().splitlines()[-1])
            index = load_index(work/f'index-{mode}')
            fig['held_out_recall'] = round(neighbour_recall(search_rows(index, queries, 10)[1], exact), 4)
            print(f'{"in one piece" if mode == "one" else "from shards":>13}: ' + ', '.join(f'{k} {v}' for k, v in fig.items()) + f'; load {load()}', flush=True)

if __name__ == '__main__': main()
