"""Benchmark: which photo backbone, input size and training options give the best category model and embeddings on this CPU.

One row per run (a backbone, an input size, the cached views and `train_cached` options). Each row:

1. the feature pass: `features.cache_features` for each cached view (reused when the keyed cache is there already;
   the time of the pass that made it is then quoted from `WORK/feature_times.json`, marked "reused");
2. training: `train.train(..., mode='cached')` into `WORK/models/<row>`, evaluated on the product-level
   validation split (accuracy per photo, per product, top-3);
3. retrieval: every photo's embedding is computed from its cached prefix features (the frozen prefix's output
   is the same whether cached or recomputed, so this equals a fresh `embed.embed_photos` pass up to float16
   rounding of the cache, at a fraction of its cost) and scored with `rank.evaluate_retrieval`: precision@10
   (validation photos query the training photos) and same-product recall@1 (validation photos query all other
   photos). Besides the default layer (`embed.DEFAULT_LAYER`), several other embeddings of the same pass are
   scored, to see what moves same-product recall on unseen products: the other layers, mirror test-time
   averaging, GeM pooling, the untrained ImageNet body (the "frozen probe"), the pooled prefix map (mid level),
   concatenations, and a learned whitening (`product_whitening`: a linear map learned on the training products'
   photos that whitens the scatter within a product; the validation products stay unseen); for a model folder
   with a whitening (`train(..., whiten=True)`, the default: `fbm_rank.whitening`), also the model's own `whitened` layer.

Each finished row is appended to `WORK/results.jsonl` as one JSON line (raw figures, settings, load averages),
the embedding pass's raw outputs are kept in `WORK/outputs/<row>.npz` (float16) to try other combinations (the
untrained top's, which depend only on the cache, in `WORK/frozen/<cache>.npz`, computed once),
and the markdown tables are printed from that file (the latest run of each row), so a long series can be run
row
by row and the table printed at any time with `--table`. The 1-minute load average is printed with every figure:
the times depend on how busy the machine is.

    python bench/bench_backbones.py                       # every row on the real data, in order
    python bench/bench_backbones.py --rows lite0-224,lite2-260
    python bench/bench_backbones.py --list                # the rows and their settings
    python bench/bench_backbones.py --table               # print the tables of the rows run so far
    python bench/bench_backbones.py --model MODEL --rows NAME  # score a model trained elsewhere as row NAME
    python bench/bench_backbones.py --quick               # the demo data at 64 px, 1 epoch: a smoke test
"""
import argparse, json, time
from pathlib import Path
import numpy as np, pandas as pd, torch
import torch.nn.functional as F
from fbm_rank.paths import marketplace_dir, read_json, write_json
from fbm_rank.backbones import backbone, make_model
from fbm_rank.train import train
from fbm_rank.features import cache_features, cache_key, cache_name
from fbm_rank.embed import DEFAULT_LAYER, EMBEDDING_LAYERS, layer_vectors
from fbm_rank.rank import evaluate_retrieval
from common import REAL, Timer, demo_prepared, inference_model, load1, with_category

L0, L1, L2 = 'efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2'
# name -> settings: arch, size, then any `train_cached` option (views, product_weight, temperature, cache_at, epochs, ...)
ROWS = {
    'lite0-224': dict(arch=L0, size=224),                       # the default: the baseline
    'lite2-260': dict(arch=L2, size=260),                       # lite2 at its own size
    'lite1-240': dict(arch=L1, size=240),
    'lite0-224-flip': dict(arch=L0, size=224, views=('plain', 'flip')),
    'lite0-224-pw0': dict(arch=L0, size=224, product_weight=0.0),
    'lite0-224-pw3': dict(arch=L0, size=224, product_weight=3.0),
    'lite0-224-t05': dict(arch=L0, size=224, temperature=0.05),
    'lite0-224-e12': dict(arch=L0, size=224, epochs=12),
    'lite0-256': dict(arch=L0, size=256),
    'lite2-260-flip': dict(arch=L2, size=260, views=('plain', 'flip')),
    'lite2-260-pw3': dict(arch=L2, size=260, product_weight=3.0),
}
QUICK_SIZE = 64

def feature_pass(prepared, arch, size, cache_at, view, times_file, show_progress)->dict:
    "Make (or reuse) one cached view; its pass time, measured now or quoted from the run that made it."
    key = cache_key(prepared, arch, size, cache_at, view)
    name = f'{cache_name(arch, size, cache_at, view)}.{key[:16]}'
    known = read_json(times_file) if times_file.is_file() else {}
    done = (Path(prepared)/'cache'/f'{name}.npy').is_file()
    with Timer() as t: cache_features(prepared, arch, size, cache_at, view, show_progress=show_progress)
    if not done:
        known[name] = dict(seconds=round(t.seconds, 1), load_before=t.before, load_after=t.after)
        write_json(known, times_file)
    quoted = known.get(name, {})
    return dict(view=view, cache=name, reused=done, seconds=quoted.get('seconds'),
                load_before=quoted.get('load_before', t.before), load_after=quoted.get('load_after', t.after))

def gem(f, p:float=3.0): return F.avg_pool2d(f.clamp(min=1e-6).pow(p), f.shape[-2:]).pow(1/p).flatten(1)

def _batches(feats, bs):
    for i in range(0, len(feats), bs):
        yield torch.from_numpy(np.asarray(feats[i:i+bs], dtype=np.float32)).contiguous(memory_format=torch.channels_last)

def trained_outputs(model, cache_at, feats, mirror:bool=False, bs:int=256)->dict:
    "The trained model's pooled body features, hidden layer, probabilities and GeM pooling of every photo, from its cached prefix features (+ of the mirrored map)."
    top, head = model[0][cache_at:], model[1]
    out = {}
    with torch.inference_mode():
        for x in _batches(feats, bs):
            for sfx, xi in (('', x), ('_m', x.flip(-1)))[:1 + mirror]:
                f = top(xi); hidden = head[:-1](f)
                parts = {'pooled': F.adaptive_avg_pool2d(f, 1).flatten(1), 'hidden': hidden,
                         'probs': F.softmax(head[-1](hidden).float(), dim=1)} | ({} if sfx else {'gem': gem(f)})
                for k, v in parts.items(): out.setdefault(k+sfx, []).append(v)
    return {k: torch.cat(v).float() for k, v in out.items()}

def frozen_outputs(arch, n_classes, cache_at, feats, keep:Path, mirror:bool=False, bs:int=256)->dict:
    "The untrained ImageNet top's pooled features (+ of the mirrored map) and the pooled prefix map (mid level) of every photo; kept in `keep`, as they depend only on the cache."
    if keep.is_file():
        o = dict(np.load(keep))
        if not mirror or 'frozen_m' in o: return {k: torch.from_numpy(v).float() for k, v in o.items()}
    top, out = make_model(arch, n_classes)[0][cache_at:].eval().to(memory_format=torch.channels_last), {}
    with torch.inference_mode():
        for x in _batches(feats, bs):
            out.setdefault('mid', []).append(F.adaptive_avg_pool2d(x, 1).flatten(1))
            for sfx, xi in (('', x), ('_m', x.flip(-1)))[:1 + mirror]:
                out.setdefault('frozen'+sfx, []).append(F.adaptive_avg_pool2d(top(xi), 1).flatten(1))
    out = {k: torch.cat(v).float() for k, v in out.items()}
    keep.parent.mkdir(parents=True, exist_ok=True)
    np.savez(keep, **{k: v.half().numpy() for k, v in out.items()})
    return out

def product_whitening(x:torch.Tensor, # one row per photo
                      products, # their product ids
                      learn, # boolean mask of the photos to learn it on (the training split)
                      shrink:float=0.1 # shrinkage of the within-product scatter towards its mean variance
                     )->torch.Tensor: # the rows, centred and projected
    "Learned whitening: whiten the within-product scatter of the training products' photos, then rotate to the principal axes of what is left."
    x = x.double(); learn = torch.as_tensor(np.asarray(learn, bool)); mu = x[learn].mean(0)
    xt = x[learn] - mu
    group = torch.as_tensor(pd.factorize(np.asarray(products)[learn.numpy()])[0])
    counts = torch.bincount(group)
    means = torch.zeros(len(counts), x.shape[1], dtype=x.dtype).index_add_(0, group, xt) / counts[:, None]
    d = (xt - means[group])[counts[group] > 1]
    cw = d.T @ d / len(d)
    cw = (1 - shrink)*cw + shrink*torch.trace(cw)/len(cw)*torch.eye(len(cw), dtype=x.dtype)
    w, v = torch.linalg.eigh(cw)
    p = v / w.sqrt()
    _, v2 = torch.linalg.eigh(torch.cov((xt @ p).T))
    return ((x - mu) @ p @ v2.flip(1)).float()

def embedding_variants(o:dict, products=None, learn=None)->dict:
    "name -> embedding (unnormalised rows); the first is the default layer."
    n = lambda v: F.normalize(v, dim=1)
    layer = lambda name, sfx='': EMBEDDING_LAYERS[name](o['pooled'+sfx], o['hidden'+sfx], o['probs'+sfx])
    default = n(layer(DEFAULT_LAYER))
    out = {f'{DEFAULT_LAYER} (default)': default,
            'pooled': layer('pooled'),
            'head': layer('head'),
            'GeM pooled + category': with_category([o['gem']], o['probs']),
            'frozen ImageNet pooled': o['frozen'],
            'frozen prefix map pooled (mid level)': o['mid'],
            'frozen pooled ++ default': torch.cat([n(o['frozen']), default], dim=1),
            'mid level ++ default': torch.cat([n(o['mid']), default], dim=1),
            'mid level ++ frozen pooled ++ default': torch.cat([n(o['mid']), n(o['frozen']), default], dim=1),
            'mid level ++ trained pooled ++ default': torch.cat([n(o['mid']), n(o['pooled']), default], dim=1)}
    if products is not None:   # learned whitening on the training products' photos (a linear map; validation products unseen)
        pw = lambda v: n(product_whitening(v, products, learn))
        mid, pooled = pw(o['mid']), pw(o['pooled'])
        out |= {'mid level, product-whitened': mid,
                'pooled, product-whitened, ++ category': with_category([pooled], o['probs']),
                'mid level, product-whitened ++ pooled, product-whitened ++ category x0.3': with_category([mid, pooled], o['probs'], 0.3),
                'mid level, product-whitened ++ pooled, product-whitened ++ category x0.15': with_category([mid, pooled], o['probs'])}
    if 'pooled_m' in o:   # mirror test-time averaging: the embedding of the photo plus that of its mirrored feature map
        out |= {f'{DEFAULT_LAYER} + mirror': default + n(layer(DEFAULT_LAYER, '_m')),
                'pooled + mirror': n(o['pooled']) + n(o['pooled_m']),
                'frozen ImageNet pooled + mirror': n(o['frozen']) + n(o['frozen_m']),
                'frozen pooled ++ default, + mirror': torch.cat([n(o['frozen']) + n(o['frozen_m']), default + n(layer(DEFAULT_LAYER, '_m'))], dim=1)}
    return out

def retrieval(prepared, model_dir, cache_at, work:Path, row:str, mirror:bool=False)->dict:
    "P@10 and same-product R@1 of each embedding variant, from the cached plain view; the raw outputs kept in `work/outputs/<row>.npz`."
    model, desc = inference_model(model_dir)
    training = pd.read_parquet(Path(prepared)/'training.parquet')
    ids = training[['image_id', 'product_id']].astype(str).reset_index(drop=True)
    feats = cache_features(prepared, desc['arch'], desc['size'], cache_at, 'plain', show_progress=False)
    stem = Path(feats.filename).stem
    o, out = trained_outputs(model, cache_at, feats, mirror), {}
    (work/'outputs').mkdir(parents=True, exist_ok=True)
    np.savez(work/'outputs'/f'{row}.npz', **{k: v.half().numpy() for k, v in o.items() if k != 'hidden_m'})
    o |= frozen_outputs(desc['arch'], len(desc['vocab']), cache_at, feats, work/'frozen'/f'{stem}.npz', mirror)
    variants = embedding_variants(o, ids.product_id.to_numpy(), ~training.is_valid.to_numpy())
    if getattr(model, 'whitening', None) is not None:   # the whitening `train` learned and saved (the model's default layer)
        variants["whitened (the model's own, learned by train)"] = layer_vectors((o['mid'], o['pooled'], o['hidden'], o['probs']), 'whitened', model.whitening)
    for name, v in variants.items():
        m = evaluate_retrieval((F.normalize(v, dim=1).numpy().astype(np.float32), ids), training)
        out[name] = dict(precision_at_10=m['precision_at_10'], same_product_recall_at_1=m['same_product_recall_at_1'],
                         same_product_recall_at_1_all_photos=m['same_product_recall_at_1_all_photos'], dim=int(v.shape[1]))
    return out

def scored_row(name, model_dir, prepared, work, mirror, cache_at, metrics:dict, **fields)->dict:
    "The raw result of a row: its `fields` (settings, feature passes, training time), the validation `metrics` of its model, and the retrieval of its embeddings, measured now."
    with Timer() as t: ret = retrieval(prepared, model_dir, cache_at, work, name, mirror)
    return dict(row=name, **fields, cache_at=cache_at, prepared=str(prepared), model=str(model_dir),
                accuracy=metrics['accuracy'], product_accuracy=metrics['product_accuracy'],
                top3_accuracy=metrics.get('top3_accuracy'), product_top3_accuracy=metrics.get('product_top3_accuracy'),
                retrieval=ret, retrieval_s=round(t.seconds, 1), end_load=load1())

def started()->dict: return dict(time=time.strftime('%Y-%m-%d %H:%M:%S'), load=load1())

def run_row(name, settings, prepared, work, quick=False, show_progress=True, mirror=False)->dict:
    "Feature pass, training and retrieval of one row; the raw result."
    s = dict(settings)
    arch, size = s.pop('arch'), s.pop('size')
    if quick: size, s['epochs'] = QUICK_SIZE, 1
    epochs = s.pop('epochs', 8)
    cache_at = s.get('cache_at') or backbone(arch)['cache_at']
    views = tuple(s.get('views', ('plain',)))
    start = started()
    passes = [feature_pass(prepared, arch, size, cache_at, v, work/'feature_times.json', show_progress) for v in views]
    out = work/'models'/name
    with Timer() as t:   # the photo model alone: a row compares photo models
        metrics = train(prepared, out, arch, 'cached', epochs=epochs, size=size, show_progress=show_progress, text=False, **s)
    return scored_row(name, out, prepared, work, mirror, cache_at, metrics, arch=arch, size=size, epochs=epochs, views=list(views),
                      options={k: list(v) if isinstance(v, tuple) else v for k, v in s.items() if k != 'views'}, quick=quick,
                      start=start, feature_passes=passes, train_s=read_json(out/'model.json')['training']['seconds']['train_s'],
                      train_wall_s=round(t.seconds, 1), train_load=dict(load_before=t.before, load_after=t.after))

def model_row(name, model_dir, prepared, work, mirror=False)->dict:
    "A row for a model folder trained elsewhere (e.g. by `fbm_rank train`): its recorded times and metrics, retrieval measured here."
    desc = read_json(Path(model_dir)/'model.json')
    t = desc['training']
    views = tuple(t.get('views', ('plain',)))
    passes = [dict(view=v, cache=None, reused=True, seconds=t['seconds'].get('cache_s') if i == 0 else 0.0,
                   load_before=None, load_after=None) for i, v in enumerate(views)]
    skip = {'mode', 'epochs', 'bs', 'lr', 'seed', 'photo_size', 'cache_at', 'train_photos', 'valid_photos', 'seconds', 'views'}
    return scored_row(name, model_dir, prepared, work, mirror, t.get('cache_at') or backbone(desc['arch'])['cache_at'], desc['metrics'],
                      arch=desc['arch'], size=desc['size'], epochs=t['epochs'], views=list(views),
                      options={k: v for k, v in t.items() if k not in skip} | {'trained elsewhere': True}, quick=False,
                      start=started(), feature_passes=passes, train_s=t['seconds']['train_s'],
                      train_wall_s=None, train_load=dict(load_before=None, load_after=None))

def latest(results_file, quick:bool=False)->dict:
    "The latest result of each row in the results file (quick runs and real runs kept apart)."
    rows = {}
    if results_file.is_file():
        for line in results_file.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get('quick', False) == quick: rows[r['row']] = r
    return rows

def _min(s): return '?' if s is None else f'{s/60:.1f}'

def tables(rows:dict)->str:
    "The markdown tables: one line per run, then the retrieval variants of each run."
    opts = lambda r: ', '.join([f"views {'+'.join(r['views'])}"] + [f'{k}={v}' for k, v in r['options'].items()] + [f"{r['epochs']} epochs"])
    lines = ['| row | backbone | input | settings | feature pass, min (load) | training, min (load) | features + training, min '
             '| accuracy per photo | per product | top-3 per photo | P@10 | same-product R@1 |', '|' + '---|'*12]
    for r in rows.values():
        feat = sum(p['seconds'] or 0 for p in r['feature_passes']) if all(p['seconds'] is not None for p in r['feature_passes']) else None
        ld = lambda x: f"load {x['load_before']:.1f}-{x['load_after']:.1f}" if x['load_before'] is not None else 'load not recorded'
        fl = '/'.join(ld(p) for p in r['feature_passes'])
        reused = ' reused' if all(p['reused'] for p in r['feature_passes']) else ''
        d = r['retrieval'][f'{DEFAULT_LAYER} (default)']
        tl = r['train_load']
        lines.append(f"| {r['row']} | {r['arch']} | {r['size']} | {opts(r)} | {_min(feat)} ({fl}{reused}) "
                     f"| {_min(r['train_s'])} ({ld(tl)}) | {_min(None if feat is None else feat + r['train_s'])} "
                     f"| {r['accuracy']:.1%} | {r['product_accuracy']:.1%} | {r['top3_accuracy'] or float('nan'):.1%} "
                     f"| {d['precision_at_10']:.3f} | {d['same_product_recall_at_1']:.3f} |")
    variants = list(dict.fromkeys(v for r in rows.values() for v in r['retrieval']))
    lines += ['', 'Retrieval of each embedding variant, P@10 / same-product R@1 (validation photos query; embeddings from the cached features):', '',
              '| embedding | ' + ' | '.join(rows) + ' |', '|---|' + '---|'*len(rows)]
    for v in variants:
        cells = [f"{r['retrieval'][v]['precision_at_10']:.3f} / {r['retrieval'][v]['same_product_recall_at_1']:.3f}" if v in r['retrieval'] else '' for r in rows.values()]
        lines.append(f'| {v} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--prepared', type=Path, default=REAL/'prepared',
                   help='a prepared folder of the real data (fbm_rank prepare, 256 px)')
    p.add_argument('--work', type=Path, default=Path('~/.cache/fbm_rank/bench/backbones').expanduser(),
                   help='models/, results.jsonl and feature_times.json go here')
    p.add_argument('--rows', default=None, help=f'comma-separated rows to run, in that order (default: all): {",".join(ROWS)}')
    p.add_argument('--quick', action='store_true', help=f'the demo data at {QUICK_SIZE} px, 1 epoch a row (a smoke test of the bench)')
    p.add_argument('--list', action='store_true', help='print the rows and their settings, run nothing')
    p.add_argument('--table', action='store_true', help='print the tables of the rows in results.jsonl, run nothing')
    p.add_argument('--model', type=Path, default=None, help='score this model folder (trained elsewhere) as the row named by --rows, instead of training')
    p.add_argument('--mirror', action='store_true', help='also score mirror test-time averaging (two more passes of the top)')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    a = p.parse_args()
    if a.list:
        for k, v in ROWS.items(): print(f'{k:>16}: {v}')
        return
    names = a.rows.split(',') if a.rows else list(ROWS)
    if a.model and len(names) != 1: p.error('--model scores one model: name its row with --rows NAME')
    unknown = [n for n in names if n not in ROWS and not a.model]
    if unknown: p.error(f'unknown row(s) {unknown}; known: {", ".join(ROWS)}')
    a.work.mkdir(parents=True, exist_ok=True)
    results = a.work/'results.jsonl'
    if not a.table:
        prepared = demo_prepared(a.work/'quick-prepared', QUICK_SIZE) if a.quick else a.prepared
        if not a.quick and not (prepared/'training.parquet').is_file():
            p.error(f'{prepared}: not a prepared folder; run `fbm_rank prepare {marketplace_dir()} {prepared}` first')
        for name in names:
            print(f'== {name}: {a.model or ROWS[name]}, load average {load1()}', flush=True)
            r = (model_row(name, a.model, prepared, a.work, a.mirror) if a.model else
                 run_row(name, ROWS[name], prepared, a.work, a.quick, not a.no_progress, a.mirror))
            with results.open('a') as f: f.write(json.dumps(r) + '\n')
            d = r['retrieval'][f'{DEFAULT_LAYER} (default)']
            print(f"   {name}: {r['accuracy']:.1%} per photo, {r['product_accuracy']:.1%} per product, P@10 {d['precision_at_10']:.3f}, "
                  f"same-product R@1 {d['same_product_recall_at_1']:.3f}; training {r['train_s']/60:.1f} min, load average {load1()}", flush=True)
    rows = {k: v for k, v in latest(results, a.quick).items() if k in names}
    print(f'\n{"demo data (--quick)" if a.quick else a.prepared}: load average now {load1()}\n')
    print(tables(rows))

if __name__ == '__main__': main()
