"""Benchmark: embedding throughput of `fbm_rank.embed` against a naive loop, on the same photos and model.

Both embed the same real photos (the data set's cleaned 256 px squares in `images/`) with the same model, an
efficientnet_lite0 category model (ImageNet body and an untrained head unless --model is given; the head's
weights do not change the cost), at the default layer, and must give the same vectors.

- naive loop: for each photo in turn, `Image.open`, `backbones.photo_transform`, then the model on a batch of
  ONE photo, in the default (contiguous NCHW) memory layout, with autograd on (no `torch.inference_mode`),
  then the same layer and L2 normalisation as `embed`.
- fbm_rank: `bs` photos at a time through `embed.embed_batch` (channels_last memory layout, `inference_mode`).
- fbm_rank, ONNX Runtime: the same, the model's outputs from `embed.use_runtime(model, description, 'onnx')`
  (exported once into `$FBM_CACHE/runtime`, what `embed_photos` uses on the CPU by default).

Prints photos/s of each, the ratios and the 1-minute load average before and after each, measured in the same
run: the ratio depends on the machine and on how busy it is, so quote it with the load average.

    python bench/bench_embed.py [--n 256] [--bs 64] [--model MODEL_DIR]

With `--tta` it measures test-time augmentation instead. 
One pass over every photo of a prepared folder and one over its mirror image give the model's four outputs
(`embed.OUTPUTS`: the mid-level pooled map, pooled features, the head's hidden layer, the probabilities) of both views, exactly as `embed.batch_outputs`
computes them; the plain outputs and the averaged ones (`tta=True`) are then scored the same way:
- category accuracy per validation photo and per validation product (`evaluate.evaluate_predictions`);
- precision@10 and same-product recall@1 of the validation photos against the training photos
  (`evaluate.retrieval_metrics`), for each embedding layer (`whitened` only for a model with a whitening);
and the seconds per photo of a plain and of a mirrored batch. The outputs are kept in `--cache` (a .npz), so a
rerun only scores.

    python bench/bench_embed.py --tta [--model M] [--prepared P] [--queries 1000 --index 3000] [--threads 1]
"""
import argparse, os, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
import torch.nn.functional as F
from PIL import Image
from fbm_rank.backbones import photo_transform
from fbm_rank.model_folder import load_model, model_fingerprint
from fbm_rank.embed import embed_batch, DEFAULT_LAYER, EMBEDDING_LAYERS, OUTPUTS, batch_outputs, layer_vectors, use_runtime
from fbm_rank.evaluate import evaluate_predictions, retrieval_metrics
from common import REAL, Timer, inference_model, load1, real_photos, torch_outputs, untrained_model

def naive_vector(model, x):
    "The default layer's vector of one photo, computed as a plain loop would: autograd on, default layout."
    f = model[0](x); hidden = model[1][:-1](f)
    v = EMBEDDING_LAYERS[DEFAULT_LAYER](F.adaptive_avg_pool2d(f, 1).flatten(1), hidden, F.softmax(model[1][-1](hidden), dim=1))
    return F.normalize(v, dim=1).detach().numpy()

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=256, help='photos to embed')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--model', type=Path, help='a trained model folder (default: an untrained head on ImageNet lite0)')
    a = p.parse_args()
    photos = real_photos(a.n)
    with tempfile.TemporaryDirectory() as d:
        model, desc = load_model(a.model or untrained_model(Path(d)/'model'))   # default (contiguous) memory layout for the naive loop
        tfm = photo_transform(desc)
        with Timer() as naive_t: naive = [naive_vector(model, tfm(Image.open(f)).unsqueeze(0)) for f in photos]
        fast_model = model.to(memory_format=torch.channels_last)
        batches = lambda: (torch.stack([tfm(Image.open(f)) for f in photos[i:i+a.bs]]) for i in range(0, len(photos), a.bs))
        with Timer() as ours_t: ours = [embed_batch(fast_model, x, DEFAULT_LAYER) for x in batches()]
        runner = use_runtime(fast_model, desc, 'onnx', 'cpu')   # the export (first time only) is not timed
        with Timer() as onnx_t: onnx = [embed_batch(fast_model, x, DEFAULT_LAYER) for x in batches()]
    diff = np.abs(np.concatenate(naive) - np.concatenate(ours)).max()
    diff_onnx = np.abs(np.concatenate(onnx) - np.concatenate(ours)).max()
    print(f'{len(photos)} photos, layer {DEFAULT_LAYER}, batch {a.bs}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} cores (max difference {diff:.1e}; ONNX Runtime against torch {diff_onnx:.1e})')
    print(f'naive loop : {len(photos)/naive_t.seconds:7.1f} photos/s  ({naive_t.loads()})')
    print(f'fbm_rank   : {len(photos)/ours_t.seconds:7.1f} photos/s  ({ours_t.loads()})')
    print(f'  onnx     : {len(photos)/onnx_t.seconds:7.1f} photos/s  ({onnx_t.loads()}; {runner.provider})')
    print(f'ratio      : {naive_t.seconds/ours_t.seconds:7.2f}x (torch), {naive_t.seconds/onnx_t.seconds:.2f}x (ONNX Runtime); '
          f'ONNX Runtime / torch {ours_t.seconds/onnx_t.seconds:.2f}x')

def views(outputs, tfm, paths, bs):
    "The four outputs (`OUTPUTS`) of every photo and of its mirror image by `outputs` (batch -> outputs), and the seconds the plain and the mirrored passes took."
    plain, mirror, secs = [], [], [0., 0.]
    for i in range(0, len(paths), bs):
        x = torch.stack([tfm(Image.open(p)) for p in paths[i:i+bs]])
        t = time.perf_counter(); plain.append([o.numpy() for o in outputs(x)]); secs[0] += time.perf_counter() - t
        t = time.perf_counter(); mirror.append([o.numpy() for o in outputs(x.flip(3))]); secs[1] += time.perf_counter() - t
        if i % (bs*20) == 0: print(f'  {i+len(x)}/{len(paths)} photos, load average {load1():.1f}', flush=True)
    cat = lambda parts: [np.concatenate([p[j] for p in parts]) for j in range(len(OUTPUTS))]
    return cat(plain), cat(mirror), secs

def scores(outs, t, vocab, whitening=None):
    outs = tuple(map(torch.from_numpy, outs)); probs = outs[-1]
    valid = t.is_valid.to_numpy()
    m = evaluate_predictions(probs.numpy()[valid], t.label.to_numpy()[valid], t.product_id.to_numpy()[valid], vocab)
    row = {'accuracy': m['accuracy'], 'product_accuracy': m['product_accuracy']}
    for layer in EMBEDDING_LAYERS:
        if layer == 'whitened' and whitening is None: continue   # a model without a whitening has no such layer
        v = layer_vectors(outs, layer, whitening).numpy()
        r = retrieval_metrics(v, t.root_category, t.product_id, t.is_valid, 10)
        row[f'{layer} P@10'], row[f'{layer} R@1'] = r['precision_at_10'], r['same_product_recall_at_1']
    return row

def tta_main(argv=None):
    p = argparse.ArgumentParser(description='bench_embed.py --tta: test-time augmentation (the mirror image) measured on the real data')
    p.add_argument('--tta', action='store_true')
    p.add_argument('--model', type=Path, default=REAL/'rank'/'model')
    p.add_argument('--prepared', type=Path, default=REAL/'prepared')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--cache', type=Path, default=Path('/tmp/fbm_rank_tta_outputs.npz'))
    p.add_argument('--queries', type=int, default=0, help='validation photos to score (a random sample; 0: all)')
    p.add_argument('--index', type=int, default=0, help='training photos they are ranked against (a random sample; 0: all)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: as torch chooses; 1 is faster on a busy machine)')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    t = pd.read_parquet(a.prepared/'training.parquet').reset_index(drop=True)
    rng = np.random.default_rng(0)
    pick = lambda rows, n: rows if not n or n >= len(rows) else np.sort(rng.choice(rows, n, replace=False))
    t = t.iloc[np.sort(np.concatenate([pick(np.flatnonzero(t.is_valid), a.queries), pick(np.flatnonzero(~t.is_valid), a.index)]))].reset_index(drop=True)
    model, desc = inference_model(a.model)
    key = model_fingerprint(a.model) + str(len(t)) + str(list(t.image_id[:3])) + str(OUTPUTS)
    n_out = len(OUTPUTS)
    if a.cache.exists() and str(np.load(a.cache)['key']) == key:
        z = np.load(a.cache); plain, mirror, secs = [z[f'p{j}'] for j in range(n_out)], [z[f'm{j}'] for j in range(n_out)], list(z['secs'])
    else:
        with Timer() as passes: plain, mirror, secs = views(torch_outputs(model, desc), photo_transform(desc), [a.prepared/q for q in t.path], a.bs)
        print(f'{passes.loads()} during the passes')
        np.savez(a.cache, key=key, secs=secs, **{f'p{j}': plain[j] for j in range(n_out)}, **{f'm{j}': mirror[j] for j in range(n_out)})
    # the averaged outputs here are what `batch_outputs(..., tta=True)` returns: checked on the first photos
    x = torch.stack([photo_transform(desc)(Image.open(a.prepared/q)) for q in t.path[:8]])
    whitening = getattr(model, 'whitening', None)
    layer = 'whitened' if whitening is not None else DEFAULT_LAYER
    v, pr = batch_outputs(model, x, layer, tta=True)
    avg = [(plain[j][:8] + mirror[j][:8])/2 for j in range(n_out)]
    ref = layer_vectors(tuple(map(torch.from_numpy, avg)), layer, whitening).numpy()
    print(f'check against batch_outputs({layer}, tta=True): max difference {max(np.abs(v - ref).max(), np.abs(pr - avg[-1]).max()):.1e}')
    vocab = list(desc['vocab'])
    rows = {'plain': scores(plain, t, vocab, whitening), 'mirror only': scores(mirror, t, vocab, whitening),
            'tta (mean of both)': scores([(a_ + b_)/2 for a_, b_ in zip(plain, mirror)], t, vocab, whitening)}
    print(f'{len(t)} photos ({int(t.is_valid.sum())} validation), model {a.model} ({desc["arch"]}, {desc["size"]} px)')
    print(pd.DataFrame(rows).T.round(4).to_string())
    valid, label = t.is_valid.to_numpy(), t.label.to_numpy()
    right = {k: o[-1][valid].argmax(1) == label[valid] for k, o in (('plain', plain), ('tta', [(plain[-1] + mirror[-1])/2]))}
    print(f"validation photos right only with tta: {int((right['tta'] & ~right['plain']).sum())}, "
          f"right only without: {int((right['plain'] & ~right['tta']).sum())} (of {int(valid.sum())})")
    print(f'seconds per photo: plain {secs[0]/len(t)*1000:.1f} ms, mirrored pass {secs[1]/len(t)*1000:.1f} ms '
          f'(tta costs both), {torch.get_num_threads()} threads, load average now {load1():.1f}')


if __name__ == '__main__': tta_main() if '--tta' in sys.argv else main()
