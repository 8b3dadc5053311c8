"""Inference engines for the category model against the CPU's compute ceiling: torch eager, torch.compile, ONNX Runtime.

- compute per photo: the model's floating-point operations for one photo, counted by
  `torch.utils.flop_counter.FlopCounterMode` (a multiply-add is 2 operations; convolutions and matrix products
  only, which is where nearly all the work is);
- the machine's rate: float32 matrix products (`torch.mm`, `--matmul` square) with the same threads, GFLOP/s,
  measured in the same run; the ceiling is that rate over the compute per photo, in photos/s;
- each engine computes the outputs every embedding layer is made from (pooled features, the head's hidden layer,
  the probabilities, ...: `embed.OUTPUTS`) for `--n` real cleaned photos, `--bs` at a time, best of
  `--repeats`; its throughput is printed with its share of the ceiling, the load average before and after, and
  its largest difference to eager (the engines must agree within 1e-4 to count);
- torch.compile (default mode, inductor) and ONNX Runtime (`embed.use_runtime`: the model exported once with a
  dynamic batch into the cache, `$FBM_CACHE/runtime/`; skipped when `onnxruntime`/`onnx` are not installed) are each
  timed after their warm-up, whose seconds are printed apart (the export or loading of the cached file is not timed).

    python bench/bench_infer.py [--model MODEL_DIR] [--n 128] [--bs 32] [--repeats 3] [--threads 1] [--engines eager,onnx]
"""
import argparse, os, tempfile, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from fbm_rank.backbones import DEFAULT_ARCH, photo_transform
from fbm_rank.embed import use_runtime
from common import REAL, Timer, best_of, inference_model, real_photos, torch_outputs, untrained_model

REAL_MODEL = REAL/'rank'/'model'

def matmul_gflops(n:int, seconds:float=3.0)->float:
    "The best float32 `torch.mm` rate of an `n` x `n` product, GFLOP/s, over about `seconds`."
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2): a @ b
    best, end = float('inf'), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    return 2*n**3/best/1e9

def flops_per_photo(outputs, x)->int:
    "Floating-point operations of `outputs` (batch -> outputs) on one photo."
    with FlopCounterMode(display=False) as counter: outputs(x[:1])
    return counter.get_total_flops()

def timed(run, x, bs, repeats):
    "Best seconds of `run` over all of `x` in batches, and the outputs."
    best, outs = best_of(lambda: [run(x[i:i+bs]) for i in range(0, len(x), bs)], repeats)
    return best, [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]

def numpy_outputs(runner): return lambda xb: [o.numpy() for o in runner(xb)]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', type=Path, help=f'a model folder (default: {REAL_MODEL} if there, else an untrained head on ImageNet {DEFAULT_ARCH})')
    p.add_argument('--n', type=int, default=128, help='photos')
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--matmul', type=int, default=1024, help='side of the square matrices for the machine rate')
    p.add_argument('--engines', default='eager,compile,onnx')
    p.add_argument('--threads', type=int, default=0, help='torch and ONNX Runtime threads (0: as torch chooses)')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        model, desc = inference_model(a.model or (REAL_MODEL if (REAL_MODEL/'model.json').exists() else untrained_model(Path(d)/'model')))
        tfm = photo_transform(desc)
        x = torch.stack([tfm(Image.open(f)) for f in real_photos(a.n)])
        eager = torch_outputs(model, desc)
        flops = flops_per_photo(eager, x)
        with Timer() as machine: rate = matmul_gflops(a.matmul)
        ceiling = rate*1e9/flops
        print(f'{desc["arch"]} at {x.shape[-1]} px, {len(x)} photos, batch {a.bs}, best of {a.repeats}, {torch.get_num_threads()} threads, '
              f'{os.cpu_count()} cores, torch {torch.__version__}')
        print(f'compute per photo {flops/1e9:.3f} GFLOP; float32 matmul {a.matmul}^2: {rate:.1f} GFLOP/s ({machine.loads()}); '
              f'ceiling {ceiling:.1f} photos/s')
        engines = {'eager': (numpy_outputs(eager), 'torch eager, channels_last, inference_mode')}
        if 'compile' in a.engines: engines['compile'] = (numpy_outputs(torch.compile(eager.run)), 'torch.compile (inductor, default mode)')
        if 'onnx' in a.engines:   # ONNX Runtime as the pipeline uses it: `embed.use_runtime`, its export cached by the model's weights
            try:
                with Timer() as ready: onnx = use_runtime(model, desc, 'onnx', 'cpu')
                engines['onnx'] = numpy_outputs(onnx), onnx.provider; print(f'onnx: runner ready in {ready.seconds:.1f} s ({ready.loads()})')
            except RuntimeError as e: print(f'onnx: skipped ({e})')
        ref = None
        for name, (run, what) in engines.items():
            if name not in a.engines: continue
            with Timer() as warm:   # warm-up (compilation), every batch shape once
                for i in range(0, len(x), a.bs): run(x[i:i+a.bs])
            with Timer() as timing: secs, outs = timed(run, x, a.bs, a.repeats)
            if ref is None: ref = outs
            diff = max(float(np.abs(o - r).max()) for o, r in zip(outs, ref))
            rate_ = len(x)/secs
            print(f'{name:8} {rate_:7.1f} photos/s  {rate_/ceiling:6.1%} of the ceiling  max diff to eager {diff:.1e}  '
                  f'warm-up {warm.seconds:5.1f} s  ({timing.loads()})  {what}')

if __name__ == '__main__': main()
