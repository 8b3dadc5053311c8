#!/usr/bin/env python
"""Search latency and recall of fbm_rank's photo index at 10,000 and 1,000,000 photos.

The photos are synthetic embeddings (`fbm_rank.demo.synthetic_embeddings`, clustered like real marketplace
embeddings; see nbs/01_demo.ipynb), L2-normalised, 1,280-d by default (efficientnet_lite0's pooled features).
For each size and index kind the script prints the build and tuning time, the latency (p50, p99) of one query at a
time (on one FAISS thread, as a web server answers one request per core) and of a batch of 1,000 queries (on all
cores), and recall@10 of the 1,000 held-out photos against exact search (`fbm_rank.evaluate.exact_search`), each
line with the load average.

    .venv/bin/python bench/bench_search.py                                  # 10k and 1M photos, flat and ivf
                                                        # (about 8 minutes on 2 cores)
    .venv/bin/python bench/bench_search.py --kinds flat ivf hnsw            # the table in nbs/11_index.ipynb
    .venv/bin/python bench/bench_search.py --sizes 10000 100000 --kinds flat hnsw ivf --dim 512

Memory: 1M x 1,280 float32 is 5.1 GB; the script holds the vectors plus one index at a time (about 11 GB at 1M).
Timings are wall-clock on whatever else the machine is doing; p99 over few samples is close to the maximum, so the
sample counts are printed beside the percentiles.
"""
import argparse, gc, json, os, time
import numpy as np, faiss
from fbm_rank.demo import synthetic_embeddings
from fbm_rank.evaluate import exact_search, neighbour_recall
from fbm_rank.index import build_index, search, search_rows, index_params
from common import Timer, load, load1, proc_status

def timed(fn, budget, max_n, min_n=1):
    "Run `fn` until `budget` seconds are spent (at least `min_n`, at most `max_n` times); the durations in ms."
    out, start = [], time.perf_counter()
    while len(out) < max_n and (len(out) < min_n or time.perf_counter() - start < budget):
        t = time.perf_counter(); fn(len(out)); out.append((time.perf_counter() - t)*1e3)
    return np.array(out)

def held_out(n, n_queries, dim, seed):
    "n indexed photos and n_queries held-out photos, drawn together (so queries share products with the index)."
    vectors, photos = synthetic_embeddings(n + n_queries, dim=dim, seed=seed)
    query_rows = np.sort(np.random.default_rng(seed).choice(n + n_queries, n_queries, replace=False))
    queries = vectors[query_rows].copy()
    keep = np.setdiff1d(np.arange(n + n_queries), query_rows)
    for i in range(0, n, 100_000):           # compact in place: a second 5 GB copy would not fit beside the index
        rows = keep[i:i+100_000]
        vectors[i:i+len(rows)] = vectors[rows]
    return vectors[:n], photos.iloc[keep].reset_index(drop=True), queries

def bench_size(n, args):
    print(f"\n== {n:,} photos, D={args.dim} ==", flush=True)
    with Timer() as made: vectors, photos, queries = held_out(n, args.queries, args.dim, args.seed)
    print(f"synthetic data: {made.seconds:.1f} s, {vectors.nbytes/1e9:.2f} GB of vectors; load {load()}", flush=True)
    exact, rows = exact_search(queries, vectors, 10)[1], []
    for kind in args.kinds:
        index = build_index(vectors, photos, kind=kind, show_progress=False, seed=args.seed)
        p = index.meta['params']
        shown = {k: v for k, v in p.items() if k not in ('kind', 'train_size')}
        print(f"[{kind}] built in {index.meta['build_seconds']:.1f} s"
              + (f", tuned in {index.meta['tune_seconds']:.1f} s" if 'tune_seconds' in index.meta else '')
              + f"; params {shown}; RSS {proc_status()/1e9:.1f} GB; load {load()}", flush=True)
        faiss.omp_set_num_threads(args.single_threads)    # one request, one core: what a web server does
        single = timed(lambda i: search(index, queries[i % len(queries)], 10), args.budget, args.single, min_n=10)
        faiss.omp_set_num_threads(args.threads)
        batch = timed(lambda i: search(index, queries, 10), args.budget, 10)
        r = neighbour_recall(search_rows(index, queries, 10)[1], exact)
        row = {'n': n, 'dim': args.dim, 'kind': kind, 'params': shown, 'build_s': index.meta['build_seconds'],
               'tune_s': index.meta.get('tune_seconds', 0.0),
               'single_p50_ms': float(np.percentile(single, 50)), 'single_p99_ms': float(np.percentile(single, 99)),
               'single_n': len(single), 'batch_p50_ms': float(np.percentile(batch, 50)),
               'batch_p99_ms': float(np.percentile(batch, 99)), 'batch_n': len(batch),
               'batch_per_query_ms': float(np.percentile(batch, 50))/len(queries), 'recall_at_10': r, 'load': load1()}
        print(f"[{kind}] one query: p50 {row['single_p50_ms']:.2f} ms, p99 {row['single_p99_ms']:.2f} ms (n={len(single)}); "
              f"batch of {len(queries)}: p50 {row['batch_p50_ms']:.0f} ms, p99 {row['batch_p99_ms']:.0f} ms (n={len(batch)}, "
              f"{row['batch_per_query_ms']:.3f} ms/query); recall@10 {r:.3f}; load {load()}", flush=True)
        rows.append(row)
        del index; gc.collect()
    del vectors; gc.collect()
    return rows

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[10_000, 1_000_000])
    ap.add_argument('--dim', type=int, default=1280)
    ap.add_argument('--kinds', nargs='+', default=['flat', 'ivf'], choices=['flat', 'hnsw', 'ivf'])
    ap.add_argument('--queries', type=int, default=1000, help='held-out queries (the batch size)')
    ap.add_argument('--single', type=int, default=300, help='most single-query searches timed')
    ap.add_argument('--budget', type=float, default=15.0, help='seconds spent timing each series (at least 10 single, 1 batch)')
    ap.add_argument('--threads', type=int, default=os.cpu_count(), help='FAISS (OpenMP) threads for builds and batches')
    ap.add_argument('--single-threads', type=int, default=1, help='FAISS threads for single queries')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', help='also write the rows here')
    args = ap.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    print(f"bench_search: D={args.dim}, sizes {args.sizes}, kinds {args.kinds}, FAISS threads {args.threads} (single queries: {args.single_threads}), "
          f"{args.queries} held-out queries, faiss {faiss.__version__}, {os.cpu_count()} CPUs; load {load()}", flush=True)
    for n in args.sizes:
        print(f"index_params({n:,}, {args.dim}) default: {index_params(n, args.dim)}")
    start, rows = time.perf_counter(), []
    for n in args.sizes: rows += bench_size(n, args)
    print(f"\n{'photos':>10} {'kind':>5} {'build s':>8} {'tune s':>7} {'1q p50 ms':>10} {'1q p99 ms':>10} "
          f"{'1000q p50 ms':>13} {'1000q p99 ms':>13} {'recall@10':>9} {'load':>5}")
    for r in rows:
        print(f"{r['n']:>10,} {r['kind']:>5} {r['build_s']:>8.1f} {r['tune_s']:>7.1f} {r['single_p50_ms']:>10.2f} "
              f"{r['single_p99_ms']:>10.2f} {r['batch_p50_ms']:>13.0f} {r['batch_p99_ms']:>13.0f} {r['recall_at_10']:>9.3f} {r['load']:>5.2f}")
    print(f"total {time.perf_counter() - start:.0f} s; load {load()}")
    if args.json:
        with open(args.json, 'w') as f: json.dump(rows, f, indent=2)

if __name__ == '__main__': main()
