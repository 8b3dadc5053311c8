"""What the bench scripts share: the load average printed beside every figure, timing, a process's memory, the data
they run on (the real marketplace, the demo, a model folder) and precision@k of a matrix of scores.

The scripts import it as `common`: `python bench/bench_x.py` puts `bench/` first on `sys.path`.
Only public names of fbm_rank are used here and in the scripts.
"""
import os, time
from pathlib import Path
import numpy as np, pandas as pd

REAL = Path(os.environ.get('FBM_WORK', Path.home()/'.cache'/'fbm_rank'/'real'))   # the real-data runs: prepared/, rank/model, rank/emb

def load1()->float:
    "The 1-minute load average, to record beside a figure."
    return round(os.getloadavg()[0], 2)

def load()->str:
    "The load averages (1, 5 and 15 minutes) to print beside a figure, e.g. f'load {load()}': 'load 1.52/0.97/0.40'."
    return '/'.join(f'{x:.2f}' for x in os.getloadavg())

class Timer:
    "Wall seconds of a `with` block (`seconds`) and the 1-minute load average before and after it (`before`, `after`)."
    def __enter__(self): self.before, self.start = load1(), time.perf_counter(); return self
    def __exit__(self, *exc): self.seconds, self.after = time.perf_counter() - self.start, load1()
    def loads(self)->str: return f'load average {self.before:.2f} -> {self.after:.2f}'

def best_of(fn, repeats:int)->tuple:
    "(the best wall seconds of `repeats` calls of `fn()`, the last call's result)."
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t)
    return best, out

def proc_status(field:str='VmRSS', pid='self')->int|None:
    "A memory field of `/proc/PID/status` (VmRSS, VmHWM: the peak so far, RssAnon...) in bytes; None once the process is gone."
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith(field + ':'): return int(line.split()[1])*1024
    except (FileNotFoundError, ProcessLookupError): return None

def real_photos(n:int)->list:
    "The first `n` cleaned photos of the real data set (its 256 px squares in `images/`)."
    from fbm_rank.paths import marketplace_dir
    return sorted((marketplace_dir()/'images').glob('*.jpg'))[:n]

def real_prepared(prepared=None, size:int=256, show_progress:bool=False)->Path:
    "The real marketplace prepared in `prepared` (default `REAL/prepared`), made with `prepare` unless finished already (about a minute)."
    from fbm_rank.paths import marketplace_dir
    from fbm_rank.prepare import prepare
    prepared = Path(prepared or REAL/'prepared')
    if not (prepared/'report.json').is_file(): prepare(marketplace_dir(), prepared, size=size, show_progress=show_progress)
    return prepared

def demo_prepared(prepared, size:int=64)->Path:
    "The demo marketplace prepared at `size` px in `prepared`, unless finished there already."
    from fbm_rank.demo import demo_marketplace
    from fbm_rank.prepare import prepare
    prepared = Path(prepared)
    if not (prepared/'report.json').is_file(): prepare(demo_marketplace(), prepared, size=size, show_progress=False, n_workers=1)
    return prepared

def untrained_model(dest, vocab=None, arch:str=None, size:int=None)->Path:
    "A model folder in `dest`: ImageNet `arch` with an untrained head, the same every run (its cached ONNX export is reused). For costs: the arithmetic is the work, not what the head learned."
    import torch
    from fbm_rank.labels import ROOT_CATEGORIES
    from fbm_rank.backbones import DEFAULT_ARCH, make_model
    from fbm_rank.model_folder import save_model
    arch, vocab = arch or DEFAULT_ARCH, list(vocab or ROOT_CATEGORIES)
    torch.manual_seed(0)
    save_model(make_model(arch, len(vocab)), dest, dict(arch=arch, vocab=vocab) | ({} if size is None else dict(size=size, training={'photo_size': size})))
    return Path(dest)

def inference_model(model_dir)->tuple:
    "(model, description) of a model folder, in eval mode and the channels_last memory layout, as the pipeline runs it."
    import torch
    from fbm_rank.model_folder import load_model
    model, desc = load_model(model_dir)
    return model.to(memory_format=torch.channels_last).eval(), desc

def torch_outputs(model, description:dict):
    "A function: batch of photos -> the model's outputs (`embed.OUTPUTS`: mid, pooled, hidden, probs) as float32 CPU tensors, computed by torch on the CPU as `embed.batch_outputs` does."
    from fbm_rank.embed import use_runtime
    return use_runtime(model, description, 'torch', 'cpu')

def with_category(parts:list, probs, weight:float=None):
    "The rows of `parts` and the category posterior `probs`, each L2-normalised, side by side; the posterior weighted by `weight` (default `embed.CATEGORY_WEIGHT`), as in `pooled_category`."
    import torch, torch.nn.functional as F
    from fbm_rank.embed import CATEGORY_WEIGHT
    w = CATEGORY_WEIGHT if weight is None else weight
    return torch.cat([F.normalize(p, dim=1) for p in parts] + [w**0.5*F.normalize(probs, dim=1)], dim=1)

def score_precision(scores:np.ndarray, # queries x candidates, higher is more similar
                    query_labels, # the queries' categories
                    candidate_labels, # the candidates' categories
                    k:int=10, # candidates per query
                    query_ids=None, # the queries' ids, to leave each query's own candidate out (with `candidate_ids`)
                    candidate_ids=None # the candidates' ids (default: their positions)
                   )->float: # rounded to 4 digits
    "`evaluate.precision_at_k` of a matrix of scores rather than of vectors: the mean share of each query's top-`k` candidates in its category."
    from fbm_rank.evaluate import precision_at_k
    n = scores.shape[1]   # each candidate is a unit vector of its own: a query's row of scores is then its vector
    ids = np.arange(n) if candidate_ids is None else np.asarray(candidate_ids)
    return round(precision_at_k(np.asarray(scores, np.float32), np.asarray(query_labels), np.eye(n, dtype=np.float32),
                                np.asarray(candidate_labels), ids, k, query_ids), 4)

def product_photo_matrix(v, codes, q, t):
    "Best photo-pair cosine of query products `q` against candidate products `t` (codes: product of each photo row, sorted)."
    qi, ti = np.flatnonzero(np.isin(codes, q)), np.flatnonzero(np.isin(codes, t))
    s = v[qi] @ v[ti].T
    s = np.maximum.reduceat(s, np.r_[0, np.flatnonzero(np.diff(codes[ti])) + 1], axis=1)
    return np.maximum.reduceat(s, np.r_[0, np.flatnonzero(np.diff(codes[qi])) + 1], axis=0)

def listing_signals(emb, listings:pd.DataFrame, model):
    "The listings with photos, as the ranking benches read them: photo rows grouped by listing, text embeddings, category probabilities."
    from types import SimpleNamespace
    from fbm_rank.embed import read_embeddings
    v, ids, _ = read_embeddings(emb)
    keep = ids.product_id.isin(listings.product_id).to_numpy()
    prods = ids.product_id[keep].drop_duplicates().to_numpy()
    codes = pd.Categorical(ids.product_id[keep], categories=prods).codes
    order = np.argsort(codes, kind='stable')
    L = listings.set_index('product_id').loc[prods]
    valid = L.is_valid.to_numpy()
    return SimpleNamespace(v=v[keep][order], codes=codes[order], prods=prods, root=L.root_category.to_numpy(), sub=L.sub_category.to_numpy(),
                           T=model.embed(L.text), probs=model.predict_proba(L.text), col={c: i for i, c in enumerate(model.vocab)},
                           vi=np.flatnonzero(valid), ti=np.flatnonzero(~valid))


def add_service_folders(p, # an argparse parser of a bench that starts `fbm_rank serve`
                        demo_epochs:int, # training epochs of a demo the bench builds itself
                        photos_help:str # what --photos holds for this bench
                       ):
    "The options of the benches that serve a model: its folders (or the demo's) and the photos they send."
    p.add_argument('--model', help='model folder (default: build the demo)')
    p.add_argument('--index', help='index folder')
    p.add_argument('--data', help='prepared folder')
    p.add_argument('--demo', help='folder of the demo (built there with `fbm_rank demo` unless already built)')
    p.add_argument('--demo-epochs', type=int, default=demo_epochs, help=f'training epochs of a demo built here (default {demo_epochs})')
    p.add_argument('--photos', help=photos_help)
    p.add_argument('--timeout', type=float, default=60, help='seconds a request may take before it counts as failed')
    p.add_argument('--startup-timeout', type=float, default=180)
    p.add_argument('--json', help='also write the results to this JSON file')

def check_folders(p, a):
    "Refuse a bench's arguments that give some of the model's folders but not all."
    given = [x is not None for x in (a.model, a.index, a.data)]
    if any(given) and not all(given): p.error('give --model, --index and --data together (or none for the demo)')
