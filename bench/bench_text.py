#!/usr/bin/env python
"""Training time and validation measures of fbm_rank's text model (fbm_rank.text), and the category per listing from
text, photos and both fused (fbm_rank.fusion), on the real marketplace data.

Part 1, the text model: for every option of `fbm_rank.text.TEXT_OPTIONS` (and, as baselines in the same run,
always answering the commonest training category, and the default option trained on text that keeps the site's
"Posted by ... in <category>" footer) the training time, accuracy, top-3, the `Root / Sub` path's top-1 and top-3
(options with a path head), and precision@10 of the embedding by root and by `Root / Sub` category. Issue 21's
text-only baseline, on two splits, is bench_baseline.py's.

Part 2, the listing table: accuracy per validation listing of the text model (the default option, trained in this
run), of the photo model in `--model` (its photos' mean log-probability), of the two fused with equal weights,
and fused with the weights fitted by `fbm_rank train` when the model folder has them (`model.json['fusion']`,
fitted on out-of-fold predictions of training products only). The majority class is the baseline. With a path
head, the `Root / Sub` path's top-1 (the `accuracy` column) and top-3 as `fbm_rank.predict.category_path` answers
them, from the text's root probabilities and from the fused ones.

Every line carries the load average when it was measured. The split is the prepared folder's photo split
(validation products are never trained on); the prepared folder is `$FBM_WORK/prepared` (default
~/.cache/fbm_rank/real/prepared), made with `fbm_rank.prepare.prepare` when absent (about a minute).

    .venv/bin/python bench/bench_text.py                      # all options + the listing table
    .venv/bin/python bench/bench_text.py --options word+char+title --model ~/.cache/fbm_rank/real/rank/model
    .venv/bin/python bench/bench_text.py --no-listings        # the text options only
    .venv/bin/python bench/bench_text.py --json out.json      # also write the rows as JSON

Timings are wall-clock on whatever else the machine is doing: compare them within one run, beside its load average.
"""
import argparse, tempfile
from pathlib import Path
from unittest import mock
import numpy as np, pandas as pd
import fbm_rank.text
from fbm_rank.paths import write_json
from fbm_rank.labels import CategoryEncoder
from fbm_rank.text import TEXT_OPTIONS, DEFAULT_TEXT_OPTION, text_listings, train_text_model, text_metrics, save_text_model
from common import REAL, Timer, load, real_prepared

def show(row): print(' '.join(f'{k}={v}' for k, v in row.items()), flush=True); return row

def measure(name, listings, encoder, option, out):
    with Timer() as trained: model = train_text_model(listings, encoder, option)
    with Timer() as measured: m = text_metrics(model, listings)
    size = sum(f.stat().st_size for f in save_text_model(model, out/name.replace(' ', '_')).iterdir()) / 2**20
    return show(dict(model=name, train_s=round(trained.seconds, 1), measure_s=round(measured.seconds, 1), saved_mb=round(size, 1),
                     n_features=model.settings['n_features'], dims=model.settings['dims'], **m, load=load())), model

def listing_table(model_dir, prepared, listings, encoder, text_model):
    "Rows of accuracy per validation listing: majority, text, photos, equal-weights fusion, fitted fusion."
    from fbm_rank.model_folder import load_model, read_description
    from fbm_rank.embed import photo_outputs
    from fbm_rank.fusion import FALLBACK_FUSION, listing_photo_evidence, listing_metrics
    model, desc = load_model(model_dir)
    rows = pd.read_parquet(prepared/'training.parquet')
    valid_rows = rows[rows.is_valid]
    with Timer() as photos: _, probs = photo_outputs(model, desc, [prepared/p for p in valid_rows.path], bs=64)
    photo_s = round(photos.seconds, 1)
    evidence = listing_photo_evidence(probs, valid_rows.product_id)
    valid = listings[listings.is_valid & listings.product_id.isin(evidence.index)]
    y = encoder.encode(valid.root_category)
    text_probs = text_model.predict_proba(valid.text)
    fitted = read_description(model_dir).get('fusion')
    m = listing_metrics(fitted or FALLBACK_FUSION, text_probs, evidence.loc[valid.product_id].to_numpy(), y)
    majority = float((valid.root_category == listings.root_category[~listings.is_valid].mode()[0]).mean())
    row = lambda name, accuracy, **more: show(dict(listing_model=name, accuracy=accuracy, listings=len(valid), **more, load=load()))
    out = [row('majority class', round(majority, 4)), row('text', m['text_accuracy']),
           row('photos', m['photo_accuracy'], photo_s=photo_s), row('fused, equal weights', m['equal_weights_accuracy'])]
    if fitted: out.append(row(f"fused, fitted (text {fitted['text_weight']:.2f}, photos {fitted['photo_weight']:.2f})", m['fused_accuracy']))
    else: print(f'{model_dir}: no fitted fusion in model.json (trained without text); the fitted row is left out', flush=True)
    if text_model.paths: out += path_rows(text_model, fitted or FALLBACK_FUSION, text_probs, probs, valid_rows, valid, row)
    return out

def path_rows(text_model, fusion, text_probs, probs, valid_rows, valid, row):
    "`Root / Sub` top-1 and top-3 per validation listing as `predict.listing_category` answers them: from the text's root probabilities, and from the fused ones."
    from types import SimpleNamespace
    from fbm_rank.fusion import fuse_probabilities
    from fbm_rank.predict import category_path
    rows_of = valid_rows.reset_index(drop=True).groupby('product_id').indices
    given = text_model.path_given_root(valid.text)
    listing = SimpleNamespace(vocab=text_model.vocab, text=text_model)   # what `category_path` reads of a ListingModel
    out = []
    for name, roots in [('text', text_probs), ('fused', [fuse_probabilities(fusion, t, probs[rows_of[pid]]) for pid, t in zip(valid.product_id, text_probs)])]:
        answers = [category_path(listing, r, g, n=3) for r, g in zip(roots, given)]
        top1 = np.mean([a['category_path'] == s for a, s in zip(answers, valid.sub_category)])
        top3 = np.mean([s in [x['category_path'] for x in a['suggestions']] for a, s in zip(answers, valid.sub_category)])
        out.append(row(f'{name}: Root / Sub', round(float(top1), 4), path_top_3=round(float(top3), 4)))
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--options', nargs='+', default=list(TEXT_OPTIONS), help='keys of TEXT_OPTIONS')
    p.add_argument('--work', type=Path, default=REAL)
    p.add_argument('--model', type=Path, help='photo model folder for the listing table (default WORK/rank/model, as 12_rank trains it)')
    p.add_argument('--no-listings', action='store_true', help='the text options only')
    p.add_argument('--json', type=Path, help='write the rows here')
    a = p.parse_args()
    prepared = real_prepared(a.work/'prepared')
    listings, encoder = text_listings(prepared), CategoryEncoder.load(prepared/'categories.json')
    print(f'{len(listings)} listings, {listings.is_valid.sum()} validation; load {load()}', flush=True)
    tmp = tempfile.TemporaryDirectory(); out = Path(tmp.name)   # saved only to measure the size
    rows, models = [], {}
    for name in a.options:
        row, models[name] = measure(name, listings, encoder, name, out); rows.append(row)
    rows.insert(0, show(dict(model='majority class', accuracy=rows[0]['majority'], load=load())))   # `text_metrics`' baseline
    with mock.patch.object(fbm_rank.text, 'drop_site_footer', lambda d: d): leaky = text_listings(prepared)   # the site's footer kept: what the leak is worth
    rows.append(measure(f'{DEFAULT_TEXT_OPTION} footer kept', leaky, encoder, DEFAULT_TEXT_OPTION, out)[0])
    cols = ['model', 'train_s', 'accuracy', 'top_3', 'path_top_1', 'path_top_3', 'root_p_at_10', 'sub_p_at_10', 'saved_mb', 'load']
    print(pd.DataFrame(rows).reindex(columns=cols).to_string(index=False))
    model_dir = a.model or a.work/'rank'/'model'
    if not a.no_listings:
        if not (model_dir/'model.json').is_file(): print(f'{model_dir}: no photo model; train one (fbm_rank train) for the listing table')
        else:
            text_model = models.get(DEFAULT_TEXT_OPTION) or train_text_model(listings, encoder)
            table = listing_table(model_dir, prepared, listings, encoder, text_model)
            print(pd.DataFrame(table).reindex(columns=['listing_model', 'accuracy', 'path_top_3', 'listings', 'load']).to_string(index=False, na_rep='-'))
            rows += table
    if a.json: write_json(rows, a.json)
    tmp.cleanup()

if __name__ == '__main__': main()
