"""Benchmark: retrieval quality of every embedding layer of one trained model on the real marketplace data.

For a prepared folder and a model folder (`fbm_rank train`), one pass over every photo computes the model's
four outputs (`embed.OUTPUTS`: the mid-level pooled map, the pooled body features, the head's hidden layer, the
category probabilities); from them each layer of `embed.EMBEDDING_LAYERS` is formed (`embed.layer_vectors`;
`whitened` only when the model has a whitening), `pooled_category` also with other
weights of the posterior, and `pooled` of the untrained ImageNet body as the baseline. Each is scored with
`rank.evaluate_retrieval` on the product-level validation split: precision@10 (validation photos query the
training photos; a hit is a product of the query's root category) and same-product recall@1 (validation
photos query all other photos). Prints one table row per embedding, with the load average of the machine.
The table in `nbs/10b_embed.ipynb` quotes only figures whose output is kept in the repository.

    python bench/bench_layers.py --prepared PREPARED --model MODEL [--weights 0.1,0.15,0.25,1] [--n PHOTOS]
"""
import argparse
from pathlib import Path
import pandas as pd, torch
import torch.nn.functional as F
from PIL import Image
from fbm_rank.paths import progress
from fbm_rank.backbones import make_model, photo_transform
from fbm_rank.embed import EMBEDDING_LAYERS, CATEGORY_WEIGHT, layer_vectors
from fbm_rank.rank import evaluate_retrieval
from common import inference_model, load, torch_outputs, with_category

def outputs(model, desc, paths, bs):
    "The four outputs (`embed.OUTPUTS`: mid, pooled, hidden, probs) of every photo, one pass through the model."
    run, tfm, out = torch_outputs(model, desc), photo_transform(desc), []
    for i in progress(range(0, len(paths), bs), label='embedding'):
        out.append(run(torch.stack([tfm(Image.open(p)) for p in paths[i:i+bs]])))
    return tuple(torch.cat(parts) for parts in zip(*out))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--prepared', type=Path, required=True)
    p.add_argument('--model', type=Path, required=True)
    p.add_argument('--weights', default='0.1,0.15,0.25,1', help='weights of the posterior in pooled_category')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--n', type=int, default=0, help='photos to score, a random sample of the training table (0: all)')
    a = p.parse_args()
    training = pd.read_parquet(a.prepared/'training.parquet')
    if a.n and a.n < len(training): training = training.sample(a.n, random_state=0).sort_index().reset_index(drop=True)
    ids = training[['image_id', 'product_id']].astype(str)
    paths = [a.prepared/f for f in training.path]
    model, desc = inference_model(a.model)
    outs = outputs(model, desc, paths, a.bs)
    pooled, probs, whitening = outs[1], outs[-1], getattr(model, 'whitening', None)
    frozen = make_model(desc['arch'], len(desc['vocab'])).eval().to(memory_format=torch.channels_last)
    rows = {'pooled, frozen ImageNet body': outputs(frozen, desc, paths, a.bs)[1]}
    # `whitened` needs the model's learned whitening: skipped for a model trained without one
    rows |= {f'{layer} (trained model)': layer_vectors(outs, layer, whitening)
             for layer in EMBEDDING_LAYERS if layer != 'whitened' or whitening is not None}
    rows |= {f'pooled_category, weight {w}': with_category([pooled], probs, float(w))
             for w in a.weights.split(',') if float(w) != CATEGORY_WEIGHT}
    print(f'model {a.model} ({desc["arch"]}), {len(paths)} photos, load {load()}'
          + ('' if whitening is not None else "; no whitening: layer 'whitened' skipped"))
    print('| embedding | precision@10 | same-product recall@1 |\n|---|---|---|')
    for name, v in rows.items():
        m = evaluate_retrieval((F.normalize(v.float(), dim=1).numpy(), ids), training)
        print(f"| {name} | {m['precision_at_10']:.3f} | {m['same_product_recall_at_1']:.3f} |", flush=True)

if __name__ == '__main__': main()
