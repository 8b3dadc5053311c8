"""Time the photo stage against the naive recipe on the real raw uploads.

Cleans every file in `marketplace_dir()/'raw_images'` (120 uploads, JPEG and PNG, up to 1024 px) into 256 px
squares three ways, each into its own temporary folder, and prints images per second:

- naive: one process; open, convert to RGB, resize (Lanczos) so the long side is 256, paste centred on a black
  256 x 256 canvas, save as JPEG quality 95; the same filter and quality as fbm_rank, so the difference is the
  JPEG draft decoding (at the scale whose long side still covers the square, which leaves most 1024 px JPEGs
  nothing to resample), `reducing_gap` and the worker processes;
- fbm_rank, 1 process: `clean_photos(..., n_workers=0)` (draft decoding and `reducing_gap`, no parallelism);
  none of the uploads is a 256 px square already, so every one is encoded at quality 95, as in the naive recipe;
- fbm_rank, all cores: `clean_photos(...)` with its default workers.

Each is run `--repeats` times (alternating), and the best wall time counts. The CPU seconds (this process and
its workers) are printed too, with their ratio to naive's: on a machine shared with other work, wall time
understates what more cores give, and the CPU ratio is the figure that survives a busy machine. The 1-minute
load average is printed before and after each recipe's runs: quote a figure with it.
Usage:
    .venv/bin/python bench/bench_photos.py [--repeats 3] [--size 256]
"""
import argparse, platform, resource, tempfile, time
from pathlib import Path
import PIL
from PIL import Image
from fastcore.parallel import num_cpus
from fbm_rank.paths import marketplace_dir
from fbm_rank.photos import clean_photos
from common import load1

def naive_clean(src_dir:Path, dest_dir:Path, size:int=256)->int:
    "The recipe one writes first: one process, full decode, resize, paste, save."
    n = 0
    for p in sorted(src_dir.iterdir()):
        img = Image.open(p).convert('RGB')
        w, h = img.size
        scale = size/max(w, h)
        img = img.resize((round(w*scale), round(h*scale)), Image.Resampling.LANCZOS)
        canvas = Image.new('RGB', (size, size))
        canvas.paste(img, ((size-img.width)//2, (size-img.height)//2))
        canvas.save(dest_dir/f'{p.stem}.jpg', 'JPEG', quality=95)
        n += 1
    return n

def cpu_seconds()->float:
    "CPU time used so far by this process and its finished children."
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))

def timed(f):
    "Wall and CPU seconds `f(dest)` takes with a fresh temporary folder, and the number of JPEGs it wrote."
    with tempfile.TemporaryDirectory() as d:
        cpu, start = cpu_seconds(), time.perf_counter()
        f(Path(d))
        return time.perf_counter() - start, cpu_seconds() - cpu, len(list(Path(d).glob('*.jpg')))

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3, help='runs of each recipe; the best counts')
    parser.add_argument('--size', type=int, default=256, help='side of the squares')
    args = parser.parse_args()
    src = marketplace_dir()/'raw_images'
    n_files = len([p for p in src.iterdir() if not p.name.startswith('.')])
    cores = num_cpus()
    recipes = {
        'naive, 1 process': lambda dest: naive_clean(src, dest, args.size),
        'fbm_rank, 1 process': lambda dest: clean_photos(src, dest, args.size, n_workers=0, show_progress=False),
        f'fbm_rank, {cores} cores': lambda dest: clean_photos(src, dest, args.size, show_progress=False),
    }
    best = {name: (float('inf'), float('inf')) for name in recipes}
    loads = {name: [] for name in recipes}
    for _ in range(args.repeats):
        for name, f in recipes.items():
            loads[name].append(load1())
            seconds, cpu, n_out = timed(f)
            loads[name].append(load1())
            if n_out != n_files: raise SystemExit(f'{name} wrote {n_out} of {n_files} photos')
            best[name] = min(best[name], (seconds, cpu))
    print(f'{n_files} uploads from {src} -> {args.size} px squares; best of {args.repeats}; '
          f'{cores} cores, Python {platform.python_version()}, Pillow {PIL.__version__}, '
          f'load average {load1():.1f}')
    naive, naive_cpu = n_files/best['naive, 1 process'][0], best['naive, 1 process'][1]
    for name, (seconds, cpu) in best.items():
        rate = n_files/seconds
        print(f'{name:22} {seconds:6.2f} s  {rate:7.1f} images/s  x{rate/naive:.2f} of naive  '
              f'({cpu:.2f} CPU s, x{naive_cpu/cpu:.2f} less than naive)  load average {min(loads[name]):.1f}-{max(loads[name]):.1f}')

if __name__ == '__main__': main()
