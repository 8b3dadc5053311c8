"""Benchmark: train the category model on the real marketplace data on this machine's CPU.

Prepares the real data once (reused from `REAL/prepared` on later runs), caches efficientnet_lite0's frozen
features, trains the listing model as `fbm_rank train` does (photo model, whitening, cross-fitted text model and
fusion) and evaluates on the product-level validation split. Prints the wall time of each step of the run (from
its `model.json`) with the load average, and the validation accuracy per photo, per product and per listing.
Goal: the whole run under 10 minutes on an idle 2-core CPU.

    python bench/bench_train.py                    # reuse the prepared photos and the cached features if there
    python bench/bench_train.py --fresh-cache      # recompute the features (end-to-end timing without prepare)
    python bench/bench_train.py --compare-folds    # also: the folds' photo probabilities made both ways, timed, and
                                                   # the fusion each gives on the validation listings; and the fusion
                                                   # with the categories of a listing's nearest neighbours
"""
import argparse, inspect, os, shutil, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from scipy.optimize import minimize
from scipy.special import log_softmax
from fbm_rank.paths import read_json
from fbm_rank.train import train
from fbm_rank.features import cache_features
from fbm_rank.photo_model import train_cached
from fbm_rank.backbones import DEFAULT_ARCH
from fbm_rank.evaluate import format_metrics
from fbm_rank.prepare import read_training, read_categories
from fbm_rank.model_folder import load_model
from fbm_rank.text import text_listings, train_text_model
from fbm_rank.fusion import (FOLD_PHOTOS, PROB_FLOOR, cross_fit_folds, photo_out_of_fold, pooled_features, text_out_of_fold,
                             train_text_and_fusion, listing_photo_evidence)
from common import REAL, Timer, load, real_prepared

def valid_photo_probs(model_dir, prepared, bs:int=256)->np.ndarray:
    "The saved photo model's probabilities of the validation photos, from the cached features (as training measured them)."
    model, desc = load_model(model_dir)
    rows = read_training(prepared, columns=['is_valid'])
    feats, top = cache_features(prepared, desc['arch'], desc['size'], model.cache_at, show_progress=False), torch.nn.Sequential(model[0][model.cache_at:], model[1]).eval()
    idx, out = np.flatnonzero(rows.is_valid.to_numpy()), []
    with torch.inference_mode():
        for i in range(0, len(idx), bs): out.append(top(torch.from_numpy(np.asarray(feats[idx[i:i+bs]], np.float32))).softmax(1).numpy())
    return np.concatenate(out)

def compare_folds(prepared, model_dir, options:dict)->dict:
    "For each way of making the folds' photo probabilities: its seconds, and the fusion fitted on them, measured on the validation listings."
    rows, fold_of = read_training(prepared, columns=['is_valid']), cross_fit_folds(prepared, 2, 42)
    valid, vp = rows.is_valid.to_numpy(), valid_photo_probs(model_dir, prepared)
    out = {}
    for how in FOLD_PHOTOS:
        with Timer() as t: photo = photo_out_of_fold(prepared, fold_of, 'cached', how=how, **options)
        oof_acc = float((np.nanargmax(photo[~valid], 1) == read_categories(prepared).encode(read_training(prepared).root_category[~valid])).mean())
        photo[valid] = vp
        with tempfile.TemporaryDirectory() as d: fusion = train_text_and_fusion(prepared, d, photo, fold_of)['fusion']
        out[how] = dict(seconds=t.seconds, loads=t.loads(), oof_photo_accuracy=oof_acc, photo=photo, fusion=fusion)
        print(f"folds by {how:6s}: {t.seconds/60:5.1f} min ({t.loads()}); out-of-fold photo accuracy {oof_acc:.1%}; "
              f"weights text {fusion['text_weight']:.3f} photos {fusion['photo_weight']:.3f}; validation listings: "
              f"fused {fusion['metrics']['fused_accuracy']:.2%} (text {fusion['metrics']['text_accuracy']:.2%}, photos {fusion['metrics']['photo_accuracy']:.2%})", flush=True)
    return out

def _logs(p): return np.log(np.clip(p, PROB_FLOOR, 1))

def neighbour_votes(queries, base, base_labels, n_classes:int, k:int=10)->np.ndarray:
    "Each query's category distribution among its `k` most similar base rows (cosine, similarity-weighted, a small floor)."
    s = queries @ base.T
    s = s.toarray() if hasattr(s, 'toarray') else np.asarray(s)
    top, n = np.argpartition(-s, k, axis=1)[:, :k], s.shape[0]
    out = np.full((n, n_classes), 1e-3)
    for j in range(k): np.add.at(out, (np.arange(n), base_labels[top[:, j]]), np.maximum(s[np.arange(n), top[:, j]], 0))
    return out / out.sum(1, keepdims=True)

def fit_per_category(signals:list, labels, n_classes:int, l2:float=1e-2, l2w:float=1e-2)->tuple:
    "A weight per signal and category (>= 0, ridge towards the signal's mean weight) and a bias per category, by log-loss."
    n, k = len(labels), len(signals)
    def unpack(w): return w[:k*n_classes].reshape(k, n_classes), w[k*n_classes:]
    def loss(w):
        W, b = unpack(w)
        lp = log_softmax(sum(W[i]*signals[i] for i in range(k)) + b, axis=1)
        g = np.exp(lp); g[np.arange(n), labels] -= 1
        W0 = W - W.mean(1, keepdims=True)
        gW = np.stack([(g*signals[i]).sum(0)/n + 2*l2w*(W0[i] - W0[i].mean()) for i in range(k)])
        return -lp[np.arange(n), labels].mean() + l2*np.sum(b**2) + l2w*np.sum(W0**2), np.r_[gW.ravel(), g.sum(0)/n + 2*l2*b]
    w = minimize(loss, np.r_[np.ones(k*n_classes), np.zeros(n_classes)], jac=True, method='L-BFGS-B',
                 bounds=[(0, None)]*(k*n_classes) + [(None, None)]*n_classes).x
    return unpack(w)

def fit_weights(signals:list, labels, n_classes:int, l2:float=1e-2)->np.ndarray:
    "One weight per signal (>= 0) and a bias per category, by log-loss: `fusion.fit_fusion` for any number of signals."
    n, k = len(labels), len(signals)
    def loss(w):
        lp = log_softmax(sum(w[i]*signals[i] for i in range(k)) + w[k:], axis=1)
        g = np.exp(lp); g[np.arange(n), labels] -= 1
        return -lp[np.arange(n), labels].mean() + l2*np.sum(w[k:]**2), np.r_[[(g*signals[i]).sum()/n for i in range(k)], g.sum(0)/n + 2*l2*w[k:]]
    return minimize(loss, np.r_[np.ones(k), np.zeros(n_classes)], jac=True, method='L-BFGS-B', bounds=[(0, None)]*k + [(None, None)]*n_classes).x

def neighbour_fusion(prepared, photo_oof, options:dict):
    "Fusions with more weights, fitted on out-of-fold signals of the training listings, measured on the validation listings."
    rows, enc = read_training(prepared), read_categories(prepared)
    n_classes, listings, fold_of = len(enc), text_listings(prepared), cross_fit_folds(prepared, 2, 42)
    evidence = listing_photo_evidence(photo_oof, rows.product_id)
    tr = listings[~listings.is_valid & listings.product_id.isin(evidence.index)].reset_index(drop=True)
    va = listings[listings.is_valid].reset_index(drop=True)
    ytr, yva, ftr = enc.encode(tr.root_category), enc.encode(va.root_category), tr.product_id.map(fold_of).to_numpy()
    with Timer() as t:
        text_oof = text_out_of_fold(listings, enc, fold_of).loc[tr.product_id].to_numpy()
        final = train_text_model(listings, enc)
        text_knn_tr = np.zeros((len(tr), n_classes))
        for f in np.unique(ftr):   # a training listing's neighbours: the other folds' listings, in the TF-IDF of a model trained on them
            other, held = ftr != f, ftr == f
            m = train_text_model(listings[listings.product_id.isin(tr.product_id[other])], enc, dims=2)
            text_knn_tr[held] = neighbour_votes(m.features(tr.text[held]), m.features(tr.text[other]), ytr[other], n_classes)
        text_knn_va = neighbour_votes(final.features(va.text), final.features(tr.text), ytr, n_classes)
        pooled = pooled_features(prepared, **{k: options[k] for k in ('arch', 'size') if k in options})   # ImageNet's, seen by no fold
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        per = pd.DataFrame(pooled).groupby(rows.product_id.astype(str).values, sort=False).mean()
        unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
        ptr, pva = unit(per.loc[tr.product_id].to_numpy()), unit(per.loc[va.product_id].to_numpy())
        photo_knn_tr = np.zeros((len(tr), n_classes))
        for f in np.unique(ftr):
            photo_knn_tr[ftr == f] = neighbour_votes(ptr[ftr == f], ptr[ftr != f], ytr[ftr != f], n_classes)
        photo_knn_va = neighbour_votes(pva, ptr, ytr, n_classes)
    print(f'neighbour signals: {t.seconds:.0f} s ({t.loads()}); neighbours alone on the validation listings: '
          f'text {(text_knn_va.argmax(1) == yva).mean():.2%}, photos {(photo_knn_va.argmax(1) == yva).mean():.2%}')
    train_signals = dict(text=_logs(text_oof), photos=evidence.loc[tr.product_id].to_numpy(), text_neighbours=_logs(text_knn_tr), photo_neighbours=_logs(photo_knn_tr))
    valid_signals = dict(text=_logs(final.predict_proba(va.text)), photos=evidence.loc[va.product_id].to_numpy(), text_neighbours=_logs(text_knn_va), photo_neighbours=_logs(photo_knn_va))
    acc = lambda scores, y: (scores.argmax(1) == y).mean()
    for names in (['text', 'photos'], ['text', 'photos', 'text_neighbours'], ['text', 'photos', 'photo_neighbours'], ['text', 'photos', 'text_neighbours', 'photo_neighbours']):
        a, b = [train_signals[n] for n in names], [valid_signals[n] for n in names]
        w = fit_weights(a, ytr, n_classes); k = len(names)
        one = lambda s: sum(w[i]*s[i] for i in range(k)) + w[k:]
        W, bias = fit_per_category(a, ytr, n_classes)
        per = lambda s: sum(W[i]*s[i] for i in range(k)) + bias
        print(f"  {' + '.join(names):45s} one weight each {np.round(w[:k], 3)}: fit {acc(one(a), ytr):.2%}, validation {acc(one(b), yva):.2%}; "
              f"a weight per category: fit {acc(per(a), ytr):.2%}, validation {acc(per(b), yva):.2%}", flush=True)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--prepared', type=Path, default=REAL/'prepared')
    p.add_argument('--out', type=Path, default=REAL/'bench_train'/'model', help='the model folder to write (replaced)')
    p.add_argument('--arch', default=DEFAULT_ARCH)
    p.add_argument('--size', type=int, default=None)
    p.add_argument('--epochs', type=int, default=None, help="train()'s default when omitted")
    p.add_argument('--views', default=None, help="comma-separated cached views, e.g. plain,flip; train()'s default when omitted")
    p.add_argument('--fold-photos', default=None, choices=list(FOLD_PHOTOS), help="train()'s default when omitted")
    p.add_argument('--fresh-cache', action='store_true', help="delete cached features first, and use an empty $FBM_CACHE (the sentence encoder's encodings and ONNX exports made again)")
    p.add_argument('--compare-folds', action='store_true', help='also measure both ways of making the folds, and the fusions with neighbours')
    a = p.parse_args()
    steps, start = {}, time.perf_counter()   # step -> (seconds, load average before and after)
    with Timer() as t: real_prepared(a.prepared, size=256, show_progress=True)
    steps['prepare'] = t.seconds, t.loads()
    if a.fresh_cache:
        shutil.rmtree(a.prepared/'cache', ignore_errors=True)
        os.environ['FBM_CACHE'] = tempfile.mkdtemp(prefix='fbm-bench-train-cache-')
        print(f"fresh caches: {a.prepared/'cache'} deleted, FBM_CACHE={os.environ['FBM_CACHE']}", flush=True)
    kw = {k: v for k, v in dict(epochs=a.epochs, size=a.size, fold_photos=a.fold_photos).items() if v is not None}
    if a.views: kw['views'] = tuple(a.views.split(','))
    views = kw.get('views', inspect.signature(train_cached).parameters['views'].default)
    with Timer() as t:
        for v in views: cache_features(a.prepared, a.arch, a.size, view=v)
    steps['cache features'] = t.seconds, t.loads()
    with Timer() as t: metrics = train(a.prepared, a.out, a.arch, 'cached', **kw)
    desc = read_json(a.out/'model.json')
    for k, v in desc['training']['seconds'].items(): steps[f'train: {k}'] = v, t.loads()
    steps['total'] = time.perf_counter() - start, f'load {load()} at the end'
    print(format_metrics(metrics))
    print(f"settings: {desc['training']}")
    for k, (v, loads) in steps.items(): print(f'{k:>22}: {v/60:6.2f} min  ({loads})')
    m = metrics['listing']
    print(f"validation accuracy per photo {metrics['accuracy']:.1%}, per product {metrics['product_accuracy']:.1%}; per listing: text "
          f"{m['text_accuracy']:.2%}, photos {m['photo_accuracy']:.2%}, fused {m['fused_accuracy']:.2%} (folds by {desc['training']['fold_photos']})", flush=True)
    if a.compare_folds:
        options = dict(arch=a.arch, epochs=desc['training']['epochs'], size=desc['size'], bs=64, lr=2e-3, seed=42, device=None,
                       **({'views': kw['views']} if 'views' in kw else {}))
        folds = compare_folds(a.prepared, a.out, options)
        neighbour_fusion(a.prepared, folds['heads']['photo'], options)

if __name__ == '__main__': main()
