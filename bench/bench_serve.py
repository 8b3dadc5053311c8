"""Load-test the fbm_rank HTTP service: clients at 1/8/32 concurrency, a soak, and memory under a decompression-bomb attack.

First measures the offline baseline in this process: the same model cleaning, transforming and embedding the
query photos 32 at a time (photos/s); each level's throughput is printed as a share of it. Then starts
`fbm_rank serve` in a child process on 127.0.0.1 at a free port and talks to it over HTTP only:
1. levels: POST /predict/similar_images from 1, 8 and 32 concurrent clients for --seconds each: throughput,
   p50/p99 latency, errors, the service's resident memory before and after each level;
2. soak: --soak-clients clients for --soak-seconds (default 10 minutes at 32): errors, p50/p99, throughput and the
   service's resident memory (VmRSS of /proc/PID/status) before and after, with a line per window on the way;
3. attack: --attack-uploads concurrent uploads of a small PNG that declares 8000x8000 pixels (it decodes to
   183 MiB): the service's RSS before, after and at its peak (sampled every 20 ms while the requests run), the
   replies' status codes, and whether the service still answers afterwards. Goal: growth under --attack-limit-mb.
The load averages (1/5/15 minutes) are printed with every figure: the client shares the machine with the service.

    python bench/bench_serve.py                              # demo service: levels, a 10-minute soak, the attack
    python bench/bench_serve.py --quick                      # smoke check in under a minute
    python bench/bench_serve.py --soak-seconds 60 --no-attack --json results.json
    python bench/bench_serve.py --model MODEL --index INDEX --data PREPARED --photos DIR

Without --model/--index/--data it builds the demo with `fbm_rank demo` (in a temporary folder, or in --demo DIR,
reused when it is already there). The service's store of added listings is a temporary file (`--db`). The figures
are a lower bound for the service with the client on another machine.
Exit status 1 when a request failed, the service died, or the attack grew it by --attack-limit-mb or more.
"""
import argparse, asyncio, io, json, os, platform, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path
import numpy as np
import httpx
from common import add_service_folders, check_folders, best_of, load, proc_status

MB = 2**20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_service_folders(p, 2, 'folder of query photos (default: the raw demo photos, or DATA/images)')
    p.add_argument('--seconds', type=float, default=10, help='load time per level (default 10)')
    p.add_argument('--levels', type=int, nargs='*', default=[1, 8, 32], help='concurrent clients per level')
    p.add_argument('--soak-seconds', type=float, default=600, help='length of the soak; 0 for none (default 600)')
    p.add_argument('--soak-clients', type=int, default=32, help='concurrent clients of the soak (default 32)')
    p.add_argument('--window', type=float, default=60, help='seconds between the soak progress lines (default 60)')
    p.add_argument('--no-attack', dest='attack', action='store_false', help='skip the decompression-bomb attack')
    p.add_argument('--attack-uploads', type=int, default=8, help='concurrent bomb uploads (default 8)')
    p.add_argument('--attack-side', type=int, default=8000, help='side in pixels the bomb PNG declares (default 8000)')
    p.add_argument('--attack-limit-mb', type=float, default=800, help='RSS growth under attack that fails the run (default 800)')
    p.add_argument('--no-offline', dest='offline', action='store_false', help='skip the offline embedding baseline')
    p.add_argument('--quick', action='store_true', help='smoke check in under a minute: 1 s per level, a 5 s soak, the attack')
    p.add_argument('--k', type=int, default=10, help='listings per answer')
    p.add_argument('--max-photos', type=int, default=64, help='query photos loaded into memory')
    a = p.parse_args(argv)
    check_folders(p, a)
    if a.quick: a.seconds, a.soak_seconds, a.window, a.demo_epochs = 1, 5, 2.5, 1
    return a


def rss_mb(pid, field='VmRSS'):
    "Resident memory of process `pid` in MiB (`VmHWM`: its peak so far), or None once it is gone."
    b = proc_status(field, pid)
    return None if b is None else b / MB


class RssSampler:
    "Sample a process's RSS every `every` seconds on a thread, for at most `limit` seconds; keep the peak."
    def __init__(self, pid, every=0.02, limit=900):
        self.pid, self.every, self.limit, self.peak, self.samples = pid, every, limit, 0.0, 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
    def _run(self):
        end = time.monotonic() + self.limit
        while not self.stop_flag.is_set() and time.monotonic() < end:
            r = rss_mb(self.pid)
            if r is None: return
            self.peak, self.samples = max(self.peak, r), self.samples + 1
            self.stop_flag.wait(self.every)
    def __enter__(self): self.thread.start(); return self
    def __exit__(self, *exc): self.stop_flag.set(); self.thread.join(5)


def fbm_rank_command():
    "The `fbm_rank` command of this Python environment."
    exe = Path(sys.executable).parent/'fbm_rank'
    if exe.exists(): return [str(exe)]
    if shutil.which('fbm_rank'): return [shutil.which('fbm_rank')]
    return [sys.executable, '-c', 'import sys; from fbm_rank.cli import main; sys.exit(main())']


def demo_folders(demo, epochs):
    "Model, index and prepared folders of the demo in `demo`, built with `fbm_rank demo` unless already there."
    demo = Path(demo)
    folders = demo/'model', demo/'index', demo/'prepared'
    if all(f.is_dir() for f in folders):
        print(f'demo: reusing {demo}')
        return folders
    t = time.time()
    res = subprocess.run(fbm_rank_command() + ['-q', 'demo', '--out', str(demo), '--epochs', str(epochs)],
                         capture_output=True, text=True, timeout=900)
    if res.returncode: raise SystemExit(f'fbm_rank demo failed (status {res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}')
    print(f'demo built in {time.time()-t:.1f} s with `fbm_rank demo --epochs {epochs}` (load {load()})')
    return folders


def start_service(model, index, data, db, port, log):
    return subprocess.Popen(fbm_rank_command() + ['serve', '--model', str(model), '--index', str(index), '--data', str(data),
                                                  '--db', str(db), '--host', '127.0.0.1', '--port', str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_until_up(url, proc, timeout):
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None: raise RuntimeError(f'the service exited with status {proc.returncode} before answering')
        try:
            r = httpx.get(f'{url}/healthcheck', timeout=2)
            if r.status_code == 200: return r.json(), time.time() - start
        except httpx.HTTPError: pass
        time.sleep(0.25)
    raise RuntimeError(f'the service did not answer /healthcheck within {timeout:.0f} s')


def summary(latencies, errors, elapsed):
    "Requests, throughput and p50/p99 of successful requests' latencies (seconds) over `elapsed` seconds."
    lat = np.asarray(latencies)
    pct = lambda q: round(float(np.percentile(lat, q))*1000, 1) if len(lat) else None
    return dict(requests=len(lat), errors=errors, seconds=round(elapsed, 2),
                throughput_rps=round(len(lat)/elapsed, 2) if elapsed else None, p50_ms=pct(50), p99_ms=pct(99))


async def clients(url, photos, n_clients, seconds, k, timeout, on_window=None, window=60):
    "Run `n_clients` clients sending requests back to back for `seconds`; every `window` s call `on_window(summary)`."
    done, statuses, failures = [], {}, []       # done: (finish time, latency or None when it failed)
    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=n_clients)
    max_per_client = int(seconds * 1000) + 10   # a bound on the count, beside the one on time
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        start = time.perf_counter(); deadline = start + seconds
        async def one_client(c):
            for i in range(c, c + n_clients*max_per_client, n_clients):
                if time.perf_counter() >= deadline: return
                name, data = photos[i % len(photos)]
                t = time.perf_counter()
                try:
                    r = await client.post('/predict/similar_images', files={'image': (name, data, 'image/jpeg')}, data={'k': str(k)})
                    ok, key = r.status_code == 200 and len(r.json()['results']) > 0, r.status_code
                    if not ok and len(failures) < 5: failures.append(f'{r.status_code}: {r.text[:200]}')
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    ok, key = False, type(e).__name__
                    if len(failures) < 5: failures.append(f'{type(e).__name__}: {e}')
                statuses[key] = statuses.get(key, 0) + 1
                done.append((time.perf_counter(), time.perf_counter() - t if ok else None))
        async def reporter():
            last, n_seen = start, 0
            while True:
                await asyncio.sleep(max(0.0, min(window, deadline - time.perf_counter())))
                now = time.perf_counter()
                if now >= deadline: return
                chunk = done[n_seen:]; n_seen += len(chunk)
                on_window(now - start, summary([l for _, l in chunk if l is not None], sum(l is None for _, l in chunk), now - last))
                last = now
        tasks = [one_client(c) for c in range(n_clients)] + ([reporter()] if on_window else [])
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    res = summary([l for _, l in done if l is not None], sum(l is None for _, l in done), elapsed)
    return dict(clients=n_clients, **res, statuses={str(k): v for k, v in statuses.items()}, failures=failures)


def query_photos(folder, max_photos):
    "Up to `max_photos` usable photos of `folder` (the service would refuse the others with a 4xx)."
    from fbm_rank.photos import PhotoError, open_photo
    photos, skipped = [], 0
    for p in sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith('.')):
        if len(photos) == max_photos: break
        try: open_photo(p.read_bytes(), size=256)
        except PhotoError: skipped += 1; continue
        photos.append((p.name, p.read_bytes()))
    if not photos: raise SystemExit(f'no usable photos in {folder}')
    if skipped: print(f'{skipped} unusable photo(s) in {folder} left out of the queries')
    return photos


def bomb_png(side):
    "A flat-colour PNG of `side` x `side` RGB pixels: a few hundred KB that decode to side*side*3 bytes."
    from PIL import Image
    buf = io.BytesIO()
    Image.new('RGB', (side, side), (180, 40, 40)).save(buf, 'PNG', compress_level=9)
    return buf.getvalue()


def fmt_level(r):
    nan = float('nan')
    return (f"{r['clients']:>7} {r['requests']:>8} {r['throughput_rps'] or 0:>7.1f} {r['p50_ms'] or nan:>8.1f} "
            f"{r['p99_ms'] or nan:>8.1f} {r['errors']:>6}  load {load()}")


def offline_rate(model_dir, photos, runtime='auto', bs=32, repeats=2)->tuple:
    "(photos per second, runtime) of the same work done offline in this process with the service's runtime: clean, transform and embed the query photos, `bs` at a time, best of `repeats`."
    from fbm_rank.model_folder import load_model
    from fbm_rank.embed import photo_outputs, use_runtime, model_runtime
    model, desc = load_model(model_dir)
    use_runtime(model, desc, runtime)
    data = [b for _, b in photos]
    photo_outputs(model, desc, data[:bs], bs=bs)   # warm-up
    best, _ = best_of(lambda: photo_outputs(model, desc, data, bs=bs), repeats)
    return len(data)/best, model_runtime(model)


def run_levels(url, photos, a, pid=None, offline=None):
    asyncio.run(clients(url, photos, 1, min(2, a.seconds), a.k, a.timeout))  # warm-up
    results = []
    print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}  load average"
          + ('  share of offline, RSS' if offline else ''))
    for n in a.levels:
        before = rss_mb(pid) if pid else None
        r = asyncio.run(clients(url, photos, n, a.seconds, a.k, a.timeout))
        r['load_average'] = os.getloadavg()
        if pid: r['rss_mb_before'], r['rss_mb_after'] = before, rss_mb(pid)
        extra = ''
        if offline:
            r['share_of_offline'] = (r['throughput_rps'] or 0)/offline
            extra = f"  {r['share_of_offline']:.0%} of {offline:.1f} photos/s, RSS {before:.0f} -> {r['rss_mb_after']:.0f} MiB"
        results.append(r); print(fmt_level(r) + extra, flush=True)
    return results


def run_soak(url, photos, pid, a):
    before = rss_mb(pid)
    print(f'soak: {a.soak_clients} clients for {a.soak_seconds:.0f} s; service RSS {before:.0f} MiB before (load {load()})', flush=True)
    def on_window(t, s):
        print(f"  {t:6.0f} s: {s['requests']} requests ({s['throughput_rps'] or 0:.1f}/s), {s['errors']} errors, "
              f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, RSS {rss_mb(pid) or float('nan'):.0f} MiB (load {load()})", flush=True)
    r = asyncio.run(clients(url, photos, a.soak_clients, a.soak_seconds, a.k, a.timeout, on_window, a.window))
    r.update(rss_before_mb=round(before, 1), rss_after_mb=round(rss_mb(pid) or float('nan'), 1), load_average=os.getloadavg())
    print(f"soak: {r['requests']} requests in {r['seconds']:.0f} s ({r['throughput_rps']}/s), {r['errors']} errors, "
          f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; RSS {r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f} MiB "
          f"({r['rss_after_mb']-r['rss_before_mb']:+.0f}) (load {load()})", flush=True)
    return r


async def _bombard(url, png, n, timeout):
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=httpx.Limits(max_connections=n)) as client:
        async def one(i):
            t = time.perf_counter()
            try:
                r = await client.post('/predict/similar_images', files={'image': (f'bomb{i}.png', png, 'image/png')}, data={'k': '5'})
                return r.status_code, r.text[:200], time.perf_counter() - t
            except httpx.HTTPError as e: return type(e).__name__, str(e)[:200], time.perf_counter() - t
        return await asyncio.gather(*(one(i) for i in range(n)))


def run_attack(url, png, pid, photos, a):
    before = rss_mb(pid)
    print(f'attack: {a.attack_uploads} concurrent uploads of a {len(png)/1024:.0f} KB PNG declaring {a.attack_side}x{a.attack_side} '
          f'pixels ({a.attack_side**2*3/MB:.0f} MiB decoded); service RSS {before:.0f} MiB before (load {load()})', flush=True)
    with RssSampler(pid) as sampler:
        replies = asyncio.run(_bombard(url, png, a.attack_uploads, max(a.timeout, 120)))
        time.sleep(1)  # memory freed or kept just after the replies
    after, hwm = rss_mb(pid), rss_mb(pid, 'VmHWM')
    codes = {}
    for status, _, _ in replies: codes[str(status)] = codes.get(str(status), 0) + 1
    try:
        name, data = photos[0]
        alive = httpx.post(f'{url}/predict/similar_images', files={'image': (name, data, 'image/jpeg')}, data={'k': '5'},
                           timeout=a.timeout).status_code == 200
    except httpx.HTTPError: alive = False
    peak = sampler.peak
    r = dict(uploads=a.attack_uploads, png_bytes=len(png), side=a.attack_side, statuses=codes,
             first_reply=replies[0][1], rss_hwm_mb=round(hwm or float('nan'), 1), seconds_max=round(max(t for *_, t in replies), 2),
             rss_before_mb=round(before, 1), rss_peak_mb=round(peak, 1), rss_after_mb=round(after or float('nan'), 1),
             growth_mb=round(peak - before, 1), rss_samples=sampler.samples, alive_after=alive,
             limit_mb=a.attack_limit_mb, met=bool(peak - before < a.attack_limit_mb and alive
                                                   and all(s.isdigit() and int(s) < 500 for s in codes)),
             load_average=os.getloadavg())
    print(f"attack: replies {codes} (slowest {r['seconds_max']} s; first: {r['first_reply'][:120]!r})")
    print(f"attack: RSS {before:.0f} MiB before, {peak:.0f} peak ({r['rss_samples']} samples), {r['rss_after_mb']:.0f} after "
          f"(VmHWM, the lifetime peak: {r['rss_hwm_mb']:.0f}): "
          f"growth {r['growth_mb']:+.0f} MiB, goal < {a.attack_limit_mb:.0f}: {'met' if r['met'] else 'NOT met'}; "
          f"service {'answers' if alive else 'does NOT answer'} afterwards (load {load()})", flush=True)
    return r


def main(argv=None):
    a = parse_args(argv)
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix='bench_serve_') as work:
        work = Path(work)
        if a.model is None:
            model, index, data = demo_folders(a.demo or work/'demo', a.demo_epochs)
            from fbm_rank.demo import demo_marketplace
            photos_dir = a.photos or demo_marketplace()/'images'
        else:
            model, index, data = a.model, a.index, a.data
            photos_dir = a.photos or Path(data)/'images'
        photos = query_photos(photos_dir, a.max_photos)
        png = bomb_png(a.attack_side) if a.attack else None
        print(f'machine: {os.cpu_count()} CPUs, load {load()} before the run')
        offline = None
        if a.offline:
            offline, engine = offline_rate(model, photos)
            print(f'offline baseline: {offline:.1f} photos/s (clean, transform and embed {len(photos)} query photos in this process, '
                  f'runtime {engine}, batch 32, best of 2; load {load()})', flush=True)
        from fbm_rank.testing import free_port
        port = free_port()
        url = f'http://127.0.0.1:{port}'
        log_path = work/'service.log'
        results, soak, attack = [], None, None
        with open(log_path, 'wb') as log:
            proc = start_service(model, index, data, work/'bench.sqlite', port, log)
            try:
                health, startup = wait_until_up(url, proc, a.startup_timeout)
                print(f"service up in {startup:.1f} s (pid {proc.pid}, RSS {rss_mb(proc.pid):.0f} MiB): {health['model']['arch']} runtime {health['model'].get('runtime', '?')} "
                      f"input {health['model']['size']} px, index {health['index']['kind']} of {health['index']['count']:,} photos "
                      f"({health['index']['dim']}-d), {len(photos)} query photos, k={a.k} (load {load()})", flush=True)
                if a.levels: results = run_levels(url, photos, a, proc.pid, offline)
                if a.soak_seconds > 0 and proc.poll() is None: soak = run_soak(url, photos, proc.pid, a)
                if a.attack and proc.poll() is None: attack = run_attack(url, png, proc.pid, photos, a)
                died = proc.poll() is not None
            finally:
                proc.terminate()
                try: proc.wait(20)
                except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        errors = sum(r['errors'] for r in results) + (soak['errors'] if soak else 0)
        failed = errors > 0 or died or (attack is not None and not attack['met'])
        for r in results + ([soak] if soak else []):
            for f in r['failures']: print(f"  failure ({r['clients']} clients): {f}")
        if errors or died:  # the service's own lines, without uvicorn's one line per request
            lines = [l for l in log_path.read_text(errors='replace').splitlines() if not l.startswith('INFO:     127.0.0.1:')]
            print('service log (tail):\n' + '\n'.join(lines[-40:]))
        print(f'done in {time.time()-t_start:.0f} s: {"FAILED" if failed else "ok"} ({errors} request errors'
              f'{", the service died" if died else ""})')
        report = dict(machine=dict(cpus=os.cpu_count(), load_average=os.getloadavg(), platform=platform.platform(),
                                   python=platform.python_version()),
                      service=dict(model=health['model'], index=health['index'], startup_s=round(startup, 1)),
                      offline_photos_per_s=offline, seconds_per_level=a.seconds, k=a.k, results=results, soak=soak, attack=attack)
        if a.json: Path(a.json).write_text(json.dumps(report, indent=2) + '\n')
        return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
