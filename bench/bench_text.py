#!/usr/bin/env python
"""Training time and validation measures of fbm_rank's text model (fbm_rank.text) on the real marketplace data.

For every option of `fbm_rank.text.TEXT_OPTIONS` (and, as baselines in the same run, always answering the
commonest training category, and the default option trained on text that keeps the site's "Posted by ... in
<category>" footer) the script prints the training time, the time to embed and classify the validation
listings, accuracy, top-3, and precision@10 of the embedding by root and by `Root / Sub` category, each line with
the load average when it was measured. The split is the prepared folder's photo split (validation products are
never trained on); the prepared folder is `$FBM_WORK/prepared` (default ~/.cache/fbm_rank/real/prepared), made
with `fbm_rank.prepare.prepare` when absent (about a minute).

    .venv/bin/python bench/bench_text.py                     # all options, about 5 minutes on 2 busy cores
    .venv/bin/python bench/bench_text.py --options word+char # one option
    .venv/bin/python bench/bench_text.py --json out.json     # also write the rows as JSON

Timings are wall-clock on whatever else the machine is doing: compare them within one run, beside its load average.
"""
import argparse, json, os, time, tempfile
from pathlib import Path
import pandas as pd
from fbm_rank.paths import marketplace_dir, write_json
from fbm_rank.prepare import prepare
from fbm_rank.labels import CategoryEncoder
from fbm_rank.text import (TEXT_OPTIONS, DEFAULT_TEXT_OPTION, text_listings, train_text_model, text_metrics,
                           listing_text, save_text_model)

def load(): return ' '.join(f'{x:.1f}' for x in os.getloadavg())

def measure(name, listings, encoder, option, out):
    t0 = time.perf_counter(); model = train_text_model(listings, encoder, option); t1 = time.perf_counter()
    m = text_metrics(model, listings); t2 = time.perf_counter()
    size = sum(f.stat().st_size for f in save_text_model(model, out/name.replace(' ', '_')).iterdir()) / 2**20
    row = dict(model=name, train_s=round(t1 - t0, 1), measure_s=round(t2 - t1, 1), saved_mb=round(size, 1),
               n_features=model.settings['n_features'], dims=model.settings['dims'], **m, load=load())
    print(' '.join(f'{k}={v}' for k, v in row.items()), flush=True)
    return row

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--options', nargs='+', default=list(TEXT_OPTIONS), help='keys of TEXT_OPTIONS')
    p.add_argument('--work', type=Path, default=Path(os.environ.get('FBM_WORK', Path.home()/'.cache'/'fbm_rank'/'real')))
    p.add_argument('--json', type=Path, help='write the rows here')
    a = p.parse_args()
    prepared = a.work/'prepared'
    if not (prepared/'report.json').is_file(): prepare(marketplace_dir(), prepared, show_progress=False)
    listings, encoder = text_listings(prepared), CategoryEncoder.load(prepared/'categories.json')
    print(f'{len(listings)} listings, {listings.is_valid.sum()} validation; load {load()}', flush=True)
    tmp = tempfile.TemporaryDirectory(); out = Path(tmp.name)   # saved only to measure the size
    rows = []
    train = listings[~listings.is_valid]
    majority = float((listings.root_category[listings.is_valid] == train.root_category.mode()[0]).mean())
    rows.append(dict(model='majority class', accuracy=round(majority, 4), load=load()))
    print(f"model=majority class accuracy={majority:.4f} load={load()}", flush=True)
    for name in a.options: rows.append(measure(name, listings, encoder, name, out))
    raw = pd.read_parquet(prepared/'listings.parquet')   # the site's footer kept: what the leak is worth
    keep = raw.name.fillna('') + '\n' + raw.description.fillna('')
    leaky = listings.assign(text=[listing_text(t, None) for t in keep])
    rows.append(measure(f'{DEFAULT_TEXT_OPTION} footer kept', leaky, encoder, DEFAULT_TEXT_OPTION, out))
    cols = ['model', 'train_s', 'accuracy', 'top_3', 'root_p_at_10', 'sub_p_at_10', 'saved_mb', 'load']
    print(pd.DataFrame(rows).reindex(columns=cols).to_string(index=False))
    if a.json: write_json(rows, a.json)
    tmp.cleanup()

if __name__ == '__main__': main()
