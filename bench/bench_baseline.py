#!/usr/bin/env python
"""The text-only baseline of issue 21 against fbm_rank's text model, on two product-level splits of the real listings.

The baseline: word 1-2-gram and character 2-5-gram TF-IDF (scikit-learn's defaults: `analyzer='char'`, no sublinear tf,
every n-gram kept) over the title written twice and the description, read by `SGDClassifier(loss='log_loss')` with its
defaults (alpha 1e-4, stopping when the loss stops falling), one classifier for the root category and one for the
`Root / Sub` path. Its variants (`--baselines`) change one of those choices each. The text models are options of
`fbm_rank.text.TEXT_OPTIONS` (`--options`), trained with `dims=2`: the embedding plays no part in these measures and
its SVD would only add time.

Two splits of the same listing table: `valid`, the prepared folder's photo split (`is_valid`), and `seed1`, the photos
split again by `fbm_rank.labels.split_products` with seed 1 (same-picture product groups kept on one side, a listing
without a usable photo trained on). For each split and model: root accuracy and top-3, and `Root / Sub` top-1 and
top-3 (the true path of the listing; a text model ranks paths by P(root) x P(path | root)), the training seconds and
the load average.

    .venv/bin/python bench/bench_baseline.py                                  # every baseline and option, both splits
    .venv/bin/python bench/bench_baseline.py --options 'three heads' --baselines baseline --splits seed1
    .venv/bin/python bench/bench_baseline.py --path-min 1 5 10 20 --options 'three heads' --baselines   # N for rare paths
    .venv/bin/python bench/bench_baseline.py --sentence-features 0 0.3 0.7 --options 'three heads' --baselines   # the heads' share of MiniLM
    .venv/bin/python bench/bench_baseline.py --json rows.json                 # also write the rows

Timings are wall-clock on whatever else the machine is doing: compare them within one run, beside its load average.
"""
import argparse, itertools
from pathlib import Path
import numpy as np, pandas as pd, scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from fbm_rank.paths import write_json
from fbm_rank.labels import CategoryEncoder, split_products
from fbm_rank.prepare import read_photos
from fbm_rank.text import TEXT_OPTIONS, DEFAULT_TEXT_OPTION, text_listings, train_text_model, text_metrics
from common import REAL, Timer, load, real_prepared

BASELINES = {   # the baseline and its variants: each changes one choice
    'baseline':              dict(),
    'baseline sublinear tf': dict(sublinear_tf=True),
    'baseline char_wb':      dict(analyzer='char_wb'),
    'baseline alpha 1e-5':   dict(alpha=1e-5),
    'baseline title once':   dict(twice=False),
}

def show(row): print(' '.join(f'{k}={v}' for k, v in row.items()), flush=True); return row

def splits(prepared:Path, listings:pd.DataFrame)->dict:
    "The listing table under the prepared folder's split and under a second split of its photos (seed 1)."
    photos = read_photos(prepared)
    side = split_products(photos[photos.path.notna()], 0.2, seed=1).groupby('product_id').is_valid.max()
    return {'valid': listings, 'seed1': listings.assign(is_valid=listings.product_id.map(side).fillna(False).astype(bool))}

def _top(probs, classes, truth)->tuple:
    top = np.asarray(classes, dtype=object)[np.argsort(-probs, axis=1, kind='stable')[:, :3]]
    hit = top == np.asarray(truth, dtype=object)[:, None]
    return round(float(hit[:, 0].mean()), 4), round(float(hit.any(1).mean()), 4)

def baseline(listings:pd.DataFrame, twice:bool=True, analyzer:str='char', sublinear_tf:bool=False, alpha:float=1e-4)->dict:
    "Root and path measures of the baseline trained on the training listings of `listings`."
    read = (lambda ts: [t.split('\n', 1)[0] + '\n' + t for t in ts]) if twice else list
    train, valid = listings[~listings.is_valid], listings[listings.is_valid]
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=sublinear_tf)
    chars = TfidfVectorizer(analyzer=analyzer, ngram_range=(2, 5), sublinear_tf=sublinear_tf)
    x = sp.hstack([words.fit_transform(read(train.text)), chars.fit_transform(read(train.text))]).tocsr()
    xv = sp.hstack([words.transform(read(valid.text)), chars.transform(read(valid.text))]).tocsr()
    out = {}
    for name, col in [('root', 'root_category'), ('path', 'sub_category')]:
        clf = SGDClassifier(loss='log_loss', alpha=alpha, random_state=0).fit(x, train[col])
        out[name] = _top(clf.predict_proba(xv), clf.classes_, valid[col])
    return {'accuracy': out['root'][0], 'top_3': out['root'][1], 'path_top_1': out['path'][0], 'path_top_3': out['path'][1]}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--baselines', nargs='*', default=list(BASELINES), help='keys of BASELINES (none: skip)')
    p.add_argument('--options', nargs='*', default=['word+char+title', 'word+char+title +paths', 'word+char+title +twice', DEFAULT_TEXT_OPTION],
                   help='keys of fbm_rank.text.TEXT_OPTIONS (none: skip)')
    p.add_argument('--path-min', nargs='*', type=int, default=[], help='also the options with these path_min values')
    p.add_argument('--sentence-features', nargs='*', type=float, default=[], help='also the options with these sentence_features values (0: the heads read no sentence embedding)')
    p.add_argument('--splits', nargs='+', default=['valid', 'seed1'])
    p.add_argument('--work', type=Path, default=REAL)
    p.add_argument('--json', type=Path, help='write the rows here')
    a = p.parse_args()
    prepared = real_prepared(a.work/'prepared')
    listings, encoder = text_listings(prepared), CategoryEncoder.load(prepared/'categories.json')
    tables = splits(prepared, listings)
    for s in a.splits: print(f"{s}: {tables[s].is_valid.sum()} validation listings of {len(listings)}; load {load()}", flush=True)
    rows = []
    for s in a.splits:
        for name in a.baselines:
            with Timer() as t: m = baseline(tables[s], **BASELINES[name])
            rows.append(show(dict(split=s, model=name, train_s=round(t.seconds, 1), **m, load=load())))
        for name in a.options:
            for extra in [dict(zip(('path_min', 'sentence_features'), v)) for v in itertools.product(a.path_min or [None], a.sentence_features or [None])]:
                extra = {k: v for k, v in extra.items() if v is not None}
                with Timer() as t: model = train_text_model(tables[s], encoder, name, dims=2, **extra)
                m = text_metrics(model, tables[s])
                label = name + ''.join(f' {k} {v}' for k, v in extra.items())
                rows.append(show(dict(split=s, model=label, train_s=round(t.seconds, 1), accuracy=m['accuracy'], top_3=m['top_3'],
                                      path_top_1=m.get('path_top_1'), path_top_3=m.get('path_top_3'), load=load())))
    print(pd.DataFrame(rows).to_string(index=False))
    if a.json: write_json(rows, a.json)

if __name__ == '__main__': main()
