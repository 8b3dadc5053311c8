#!/usr/bin/env python
"""Recommendations from examples on the real marketplace data: sessions of validation listings, measured as the issue asks.

A session is 3 validation listings of one `Root / Sub` category (products no model saw) as positives; the candidates
are the training listings. Every figure goes through fbm_rank.rank's own code (`example_scores`, `signal_scores`,
`mmr_order`) on the same per-listing signals as bench_listings (best photo pair, text cosine, the text model's category
probability, the vote), so it measures what `POST /recommend` ranks by:
  - P@10 by sub-category of the recommendation (aggregate `mean` and `best`), against one listing's similar listings
    (the session's first listing alone) in the same run;
  - negatives: the share of a sibling sub-category (same root) in the top 10, without and with 2 of its validation
    listings as negatives;
  - diversity: P@10 and the number of distinct sub-categories in the top 10 as `diversity` goes from 0 to 1
    (maximal marginal relevance over the top 50, candidates compared by their fused photo and text similarity);
  - with --model: `service.recommend_listings` latency p50/p99 over the whole catalogue (an index built from --emb).
Each figure is printed with the load average.

    .venv/bin/python bench/bench_recommend.py --emb ~/.cache/fbm_rank/real/rank/emb --text ~/.cache/fbm_rank/real/rank/model/text
    .venv/bin/python bench/bench_recommend.py --emb EMB --model MODEL --plot recommend.png   # latency too, and the diversity plot
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from fbm_rank.labels import CategoryEncoder
from fbm_rank.text import text_listings, train_text_model, load_text_model
from fbm_rank.rank import Candidates, signal_scores, example_scores, mmr_order, fused_similarity, FUSION_WEIGHTS
from common import REAL, Timer, load, real_prepared, listing_signals, product_photo_matrix

def sessions(sub:np.ndarray, valid_rows:np.ndarray, n:int, size:int=3, seed:int=0)->list:
    "Up to `n` sessions of `size` validation rows sharing a sub-category, drawn evenly over the sub-categories that have enough."
    rng, groups = np.random.default_rng(seed), pd.Series(valid_rows).groupby(sub[valid_rows])
    pools = [g.to_numpy() for _, g in groups if len(g) >= size + 1]
    return [rng.choice(pools[i % len(pools)], size, replace=False) for i in rng.permutation(max(n, len(pools)))[:n]]

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--emb', type=Path, required=True, help='photo embedding folder (`fbm_rank embed`)')
    p.add_argument('--text', type=Path, help='a saved text model folder; trained when absent (with --model: MODEL/text)')
    p.add_argument('--model', type=Path, help='the model folder: also time `service.recommend_listings` over the catalogue')
    p.add_argument('--work', type=Path, default=REAL)
    p.add_argument('--sessions', type=int, default=300)
    p.add_argument('--plot', type=Path, help='save the diversity plot (P@10 against distinct sub-categories) here')
    p.add_argument('--tune', action='store_true', help='first, the negative weight on TRAINING sessions (training listings, their own left out)')
    a = p.parse_args()
    prepared = real_prepared(a.work/'prepared')
    listings = text_listings(prepared)
    text_dir = a.text or (a.model/'text' if a.model else None)
    model = load_text_model(text_dir) if text_dir else train_text_model(listings, CategoryEncoder.load(prepared/'categories.json'))
    d = listing_signals(a.emb, listings, model)
    v, codes, prods, root, sub, T, probs, col, vi, ti = d.v, d.codes, d.prods, d.root, d.sub, d.T, d.probs, d.col, d.vi, d.ti
    cand_ids, cand_sub = pd.Index(prods[ti]), sub[ti]
    def examples(qset):
        "A function: a query row of `qset` -> its Candidates over the training listings (itself left out when it is one)."
        P, X, C = product_photo_matrix(v, codes, qset, ti), T[qset] @ T[ti].T, probs[qset][:, [col[c] for c in root[ti]]]
        own = qset[:, None] == ti[None]
        P, X = np.where(own, -1e3, P), np.where(own, -1e3, X)
        row = {q: i for i, q in enumerate(qset)}
        return lambda q: Candidates(cand_ids, {'photo': P[row[q]][None], 'text': X[row[q]][None], 'category': C[row[q]][None], 'vote': cand_sub})
    top10 = lambda s: np.argsort(-s, kind='stable')[:10]
    def sibling_shares(S, qset, example, weights=None):
        "(without, with 2 negatives) share of a sibling sub-category in the top 10, for the sessions that have one; P@10 with them."
        shares = []
        for i, q in enumerate(S):
            siblings = qset[(root[qset] == root[q[0]]) & (sub[qset] != sub[q[0]])]
            if not len(siblings): continue
            by_sub = pd.Series(siblings).groupby(sub[siblings]).apply(list)
            by_sub = by_sub[by_sub.map(len) >= 2]
            if not len(by_sub): continue
            sib = by_sub.index[i % len(by_sub)]
            used = list(q) + list(by_sub[sib][:2])
            gone = lambda s: np.where(np.isin(ti, used), -np.inf, s)   # the examples are never results (as `recommend` leaves them out)
            plain = gone(example_scores([example(x) for x in q], len(q), weights)[0][0])
            pushed = gone(example_scores([example(x) for x in used], len(q), weights)[0][0])
            shares.append((np.mean(cand_sub[top10(plain)] == sib), np.mean(cand_sub[top10(pushed)] == sib), np.mean(cand_sub[top10(pushed)] == sub[q[0]])))
        return np.array(shares)
    if a.tune:
        tq = np.sort(np.random.default_rng(0).choice(ti, min(1500, len(ti)), replace=False))
        tex, TS = examples(tq), sessions(sub, tq, a.sessions, seed=1)
        print(f'tuning the negative weight on {len(TS)} TRAINING sessions: weight -> sibling share without / with negatives, P@10 with them')
        for wn in (0.5, 1.0, 2.0, 4.0):
            sh = sibling_shares(TS, tq, tex, {'negative': wn})
            print(f'  {wn}: {sh[:, 0].mean():.4f} / {sh[:, 1].mean():.4f}, P@10 {sh[:, 2].mean():.4f}; load {load()}', flush=True)
    with Timer() as t: example = examples(vi)
    S = sessions(sub, vi, a.sessions)
    print(f'{len(S)} sessions of 3 validation listings (of {len(vi)}) over {len(ti)} training listings; signals in {t.seconds:.1f} s; load {load()}', flush=True)

    # P@10 by sub-category: one listing's similar listings against the session's recommendations
    rows = {'one listing (similar)': [], 'recommend (mean)': [], 'recommend (best)': [], 'centroid of the examples': []}
    tphotos = np.flatnonzero(np.isin(codes, ti)); starts = np.r_[0, np.flatnonzero(np.diff(codes[tphotos])) + 1]
    unit = lambda x: x/max(np.linalg.norm(x), 1e-12)
    def centroid(q):
        "The other way: one query, the mean of the examples' photo vectors and of their text embeddings and category probabilities."
        photo = np.maximum.reduceat(v[tphotos] @ unit(v[np.isin(codes, q)].mean(0)), starts)
        raw = {'photo': photo[None], 'text': (T[ti] @ unit(T[q].mean(0)))[None], 'category': probs[q].mean(0)[[col[c] for c in root[ti]]][None], 'vote': cand_sub}
        return signal_scores(raw)[0][0]
    for q in S:
        rows['one listing (similar)'].append(np.mean(cand_sub[top10(signal_scores(example(q[0]).raw)[0][0])] == sub[q[0]]))
        for how in ('mean', 'best'):
            s = example_scores([example(x) for x in q], len(q), aggregate=how)[0][0]
            rows[f'recommend ({how})'].append(np.mean(cand_sub[top10(s)] == sub[q[0]]))
        rows['centroid of the examples'].append(np.mean(cand_sub[top10(centroid(q))] == sub[q[0]]))
    print(f"{'ranking':24s} sub_p@10")
    for name, hits in rows.items(): print(f'{name:24s} {np.mean(hits):8.4f}  load {load()}', flush=True)

    # negatives: a sibling sub-category's share of the top 10, without and with 2 of its listings as negatives
    shares = sibling_shares(S, vi, example)
    print(f'negatives ({len(shares)} sessions with a sibling sub-category, negative weight {FUSION_WEIGHTS["negative"]}): sibling share of the '
          f'top 10 {shares[:, 0].mean():.4f} without, {shares[:, 1].mean():.4f} with 2 of its listings as negatives (P@10 with them {shares[:, 2].mean():.4f}); load {load()}', flush=True)

    # diversity: maximal marginal relevance over the top 50, the candidates compared by photos and text fused
    with Timer() as t: PT = product_photo_matrix(v, codes, ti, ti)
    XT = T[ti] @ T[ti].T
    curve = []
    for d in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        p10, kinds = [], []
        for q in S:
            s = example_scores([example(x) for x in q], len(q))[0][0]
            top = np.argsort(-s, kind='stable')[:50]
            pick = top[mmr_order(s[top], fused_similarity(PT[np.ix_(top, top)], XT[np.ix_(top, top)], weights={'category': 0, 'vote': 0}), 10, d)]
            p10.append(np.mean(cand_sub[pick] == sub[q[0]])); kinds.append(len(set(cand_sub[pick])))
        curve.append((d, np.mean(p10), np.mean(kinds)))
        print(f'diversity {d:.1f}: sub_p@10 {np.mean(p10):.4f}, distinct sub-categories in the top 10 {np.mean(kinds):.2f}; load {load()}', flush=True)
    if a.plot:
        from matplotlib.figure import Figure
        fig = Figure(figsize=(5, 3.5)); ax = fig.subplots()
        ax.plot([c[2] for c in curve], [c[1] for c in curve], 'o-')
        for d, pr, kd in curve: ax.annotate(f'{d:.1f}', (kd, pr), textcoords='offset points', xytext=(4, 4), fontsize=8)
        ax.set_xlabel('distinct sub-categories in the top 10'); ax.set_ylabel('P@10 by sub-category'); ax.set_title('recommendations: diversity 0 to 1')
        fig.tight_layout(); fig.savefig(a.plot, dpi=100); print(f'plot saved to {a.plot}')

    if a.model is None: return
    from fbm_rank.index import build_index_from
    from fbm_rank.service import load_service, recommend_listings
    with tempfile.TemporaryDirectory() as tmp:
        build_index_from([a.emb], Path(tmp)/'index', catalogue=prepared)
        svc = load_service(a.model, Path(tmp)/'index', prepared, create_store=False, runtime='torch')
        times = []
        for q in S[:100]:
            t0 = time.perf_counter(); recommend_listings(svc, list(prods[q]), k=10); times.append((time.perf_counter() - t0)*1000)
        print(f'service.recommend_listings, 3 positives over {len(svc.catalogue)} listings: p50 {np.percentile(times, 50):.1f} ms, '
              f'p99 {np.percentile(times, 99):.1f} ms ({len(times)} requests); load {load()}', flush=True)
        from fbm_rank.service import search_listings
        times = []
        for title in svc.catalogue.name[prods[vi[:100]]]:
            t0 = time.perf_counter(); search_listings(svc, title, k=10, facets=True); times.append((time.perf_counter() - t0)*1000)
        print(f'service.search_listings with facets, validation titles over {len(svc.catalogue)} listings: p50 {np.percentile(times, 50):.1f} ms, '
              f'p99 {np.percentile(times, 99):.1f} ms ({len(times)} requests); load {load()}', flush=True)

if __name__ == '__main__': main()
