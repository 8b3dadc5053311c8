#!/usr/bin/env python
"""Similar listings and search on the real marketplace data: the accuracy table of fbm_rank's text + photo ranking, reproduced.

Validation listings (products the models never saw) query the training listings; precision@10 is the share of a
query's 10 results in its root category, and in its `Root / Sub` category. Rows:
  - photo: the best photo pair's cosine (the embedding folder of the photo model);
  - text: the cosine of the text model's embeddings (fbm_rank.text);
  - naive fusion: their mean;
  - fused: fbm_rank.rank.fused_similarity with FUSION_WEIGHTS (photo/text blend, the text model's probability of the
    candidate's root category, the vote of the nearest listings' sub-categories). The weights are tuned on TRAINING
    listings querying other training listings (`--tune` prints that grid; both models were trained on those listings,
    so the training figures are high, and only their order is used), never on the validation figures.
Search: validation titles are the queries (the service's path: fbm_rank.search.search_candidates ranked by
fbm_rank.rank.rank_candidates with SEARCH_WEIGHTS, over the whole catalogue, the query's own listing left out before
the vote too), P@10 by sub-category, and the latency p50/p99 of service-like
scoring + ranking per query. `--tune` also prints the search grid on 600 TRAINING titles (keyword share, category,
vote), from which SEARCH_WEIGHTS were chosen.
Each figure is printed with the load average when it was measured.

    .venv/bin/python bench/bench_listings.py --emb ~/.cache/fbm_rank/real/rank/emb       # the photo embeddings of `fbm_rank embed`
    .venv/bin/python bench/bench_listings.py --emb EMB --text MODEL/text --tune
    .venv/bin/python bench/bench_listings.py --emb EMB --text MODEL/text --no-search   # similar listings only
    .venv/bin/python bench/bench_listings.py --emb EMB --text MODEL/text --no-tune-similar --text-min 0 0.1 0.15 0.2   # search's match bound

The prepared folder is `$FBM_WORK/prepared` (default ~/.cache/fbm_rank/real/prepared); a text model is trained
(about a minute) unless `--text` names a saved one.
"""
import argparse, time
from pathlib import Path
import numpy as np, pandas as pd
from fbm_rank.labels import CategoryEncoder
from fbm_rank.text import text_listings, train_text_model, load_text_model, DEFAULT_TEXT_OPTION
from fbm_rank.rank import fused_similarity, FUSION_WEIGHTS, rank_candidates
from fbm_rank.search import build_search, search_candidates, SEARCH_WEIGHTS
from fbm_rank.index import catalogue_table
from common import REAL, Timer, load, real_prepared, listing_signals, score_precision, product_photo_matrix

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--emb', type=Path, required=True, help='photo embedding folder (`fbm_rank embed`)')
    p.add_argument('--text', type=Path, help='a saved text model folder; trained when absent')
    p.add_argument('--option', default=DEFAULT_TEXT_OPTION, help="the text model option trained when --text is absent (e.g. 'three heads n-grams': without the sentence encoder)")
    p.add_argument('--work', type=Path, default=REAL)
    p.add_argument('--tune', action='store_true', help='print the tuning grid on training listings')
    p.add_argument('--sentence-weight', type=float, help="the sentence encoder's share of the text cosine, instead of the model's (fbm_rank.text.blend_embeddings)")
    p.add_argument('--queries', type=int, default=300, help='search latency: queries timed')
    p.add_argument('--weights', default=None, help="fusion weights to score instead of FUSION_WEIGHTS, e.g. photo=0.6,text=0.4,category=0.4,vote=0.4,neighbours=10")
    p.add_argument('--search-weights', default=None, help="search weights to score instead of SEARCH_WEIGHTS, e.g. keyword=0.5,text=0.5,category=0.4,vote=0.4")
    p.add_argument('--search-grid', nargs='*', help='with --tune: the search grid as keyword,category,vote triples instead of the default 27')
    p.add_argument('--text-min', nargs='*', type=float, help="also: search P@10 and the median number of matches on 300 training titles for these text_min bounds")
    p.add_argument('--no-tune-similar', action='store_true', help='with --tune: the search grid only')
    p.add_argument('--no-search', action='store_true', help='similar listings only (e.g. to compare photo embeddings): skip the search figures')
    a = p.parse_args()
    prepared = real_prepared(a.work/'prepared')
    listings = text_listings(prepared)
    model = load_text_model(a.text) if a.text else train_text_model(listings, CategoryEncoder.load(prepared/'categories.json'), a.option)
    if a.sentence_weight is not None: model.settings['sentence_weight'] = a.sentence_weight
    d = listing_signals(a.emb, listings, model)
    v, codes, prods, root, sub, T, probs, col, vi, ti = d.v, d.codes, d.prods, d.root, d.sub, d.T, d.probs, d.col, d.vi, d.ti
    print(f'text model: {model}; sentence encoder: {model.settings.get("sentences")} (weight {model.settings.get("sentence_weight")})')
    print(f'{len(prods)} listings with photos: {len(vi)} validation query {len(ti)} training; load {load()}', flush=True)
    def parts(q):
        return (product_photo_matrix(v, codes, q, ti), T[q] @ T[ti].T, probs[q][:, [col[c] for c in root[ti]]])
    P, X, C = parts(vi)
    weights = {k: (int if k == 'neighbours' else float)(v) for k, v in (kv.split('=') for kv in a.weights.split(','))} if a.weights else None
    rows = [('photo', P), ('text', X), ('naive fusion', (P + X)/2), ('fused', fused_similarity(P, X, C, sub[ti], weights))]
    print(f"{'ranking':14s} root_p@10 sub_p@10")
    for name, s in rows: print(f'{name:14s} {score_precision(s, root[vi], root[ti]):9.4f} {score_precision(s, sub[vi], sub[ti]):8.4f}  load {load()}', flush=True)
    if a.tune and not a.no_tune_similar:
        tq = np.sort(np.random.default_rng(0).choice(ti, min(1200, len(ti)), replace=False))
        Pt, Xt, Ct = parts(tq)
        print('tuning on training listings (own listing left out): photo category vote neighbours -> root sub')
        for w in (0.3, 0.4, 0.5, 0.6):
            for c in (0.2, 0.4):
                for vote in (0.2, 0.4):
                    for n in (10, 30):
                        s = fused_similarity(np.where(tq[:, None] == ti, -1e3, Pt), Xt, Ct, sub[ti], dict(photo=w, text=1 - w, category=c, vote=vote, neighbours=n))
                        print(w, c, vote, n, '->', score_precision(s, root[tq], root[ti], query_ids=tq, candidate_ids=ti),
                              score_precision(s, sub[tq], sub[ti], query_ids=tq, candidate_ids=ti), f'(load {load()})', flush=True)
    if a.no_search: print(f'fused with {({**FUSION_WEIGHTS, **(weights or {})})}'); return
    # search: validation titles query the whole catalogue (their own listing left out)
    cat = catalogue_table(prepared)
    with Timer() as built: search = build_search(cat, model)
    lab = listings.set_index('product_id').sub_category
    def search_p10(pids, names, weights=None, timed=False):
        hits, times = [], []
        for pid, name in zip(pids, names):
            t0 = time.perf_counter()
            res = rank_candidates(search_candidates(search, name, weights), cat, k=10, exclude_product=pid)
            times.append(time.perf_counter() - t0)
            if res: hits.append(np.mean([lab[r['product_id']] == lab[pid] for r in res]))
        return float(np.mean(hits)), np.array(times)*1000
    if a.tune:
        tq = listings[~listings.is_valid].sample(600, random_state=0)
        print('search tuning on training titles: keyword category vote -> sub_p@10')
        grid = ([tuple(map(float, g.split(','))) for g in a.search_grid] if a.search_grid else
                [(kw, c, vote) for kw in (0.3, 0.5, 0.7) for c in (0.0, 0.4, 0.8) for vote in (0.0, 0.4, 0.8)])
        for kw, c, vote in grid:
            p10, _ = search_p10(tq.product_id, cat.loc[tq.product_id, 'name'], dict(keyword=kw, text=1 - kw, category=c, vote=vote))
            print(kw, c, vote, '->', round(p10, 4), f'(load {load()})', flush=True)
    if a.text_min:
        tq = listings[~listings.is_valid].sample(300, random_state=0)
        print('text_min on 300 training titles: P@10 by sub-category, matches per query (median, 10th percentile)')
        for t in a.text_min:
            sizes = [len(search_candidates(search, name, {'text_min': t})) for name in cat.loc[tq.product_id, 'name']]
            p10, _ = search_p10(tq.product_id, cat.loc[tq.product_id, 'name'], {'text_min': t})
            print(f'text_min {t}: P@10 {p10:.4f}, matches median {np.median(sizes):.0f}, p10 {np.percentile(sizes, 10):.0f} (load {load()})', flush=True)
    queries = listings[listings.is_valid]
    search_weights = {k: (int if k == 'neighbours' else float)(v) for k, v in (kv.split('=') for kv in a.search_weights.split(','))} if a.search_weights else None
    p10, t = search_p10(queries.product_id, cat.loc[queries.product_id, 'name'], search_weights)
    print(f'search: {len(queries)} validation titles over {len(cat)} listings (table built in {built.seconds:.1f} s): '
          f'sub_p@10 {p10:.4f}, latency p50 {np.percentile(t, 50):.1f} ms p99 {np.percentile(t, 99):.1f} ms; load {load()}', flush=True)
    print(f'search weights {({**SEARCH_WEIGHTS, **(search_weights or {})})}')
    print(f'fusion weights {({**FUSION_WEIGHTS, **(weights or {})})}')

if __name__ == '__main__': main()
