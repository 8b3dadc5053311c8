"""Load-test the fbm_rank HTTP service: POST /predict/similar_images at several levels of concurrency.

Starts the service (`fbm_rank.serve.run`) in a child process on 127.0.0.1 at a free port, sends photos from
concurrent clients for a fixed time per level, prints throughput, p50/p99 latency and the error count per level,
then stops the service. Only loopback traffic.

    python bench/bench_serve.py                                   # a demo service (untrained model, demo data)
    python bench/bench_serve.py --model MODEL --index INDEX --data PREPARED --photos DIR
    python bench/bench_serve.py --seconds 10 --levels 1 8 32 --json results.json

The client runs on the same machine as the service and takes some of its CPU; on a small machine the figures
are a lower bound for what the service does with the client elsewhere.
"""
import argparse, asyncio, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import httpx


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', help='model folder (default: build a demo service)')
    p.add_argument('--index', help='index folder')
    p.add_argument('--data', help='prepared folder')
    p.add_argument('--photos', help='folder of query photos (default: the raw demo photos, or DATA/images)')
    p.add_argument('--size', type=int, default=224, help='demo service: model input size (default 224)')
    p.add_argument('--seconds', type=float, default=10, help='load time per level (default 10)')
    p.add_argument('--levels', type=int, nargs='+', default=[1, 8, 32], help='concurrent clients per level')
    p.add_argument('--k', type=int, default=10, help='listings per answer')
    p.add_argument('--max-photos', type=int, default=64, help='query photos loaded into memory')
    p.add_argument('--max-batch', type=int, default=16, help="the service's max_batch (photos per forward pass)")
    p.add_argument('--startup-timeout', type=float, default=180)
    p.add_argument('--json', help='also write the results to this JSON file')
    a = p.parse_args(argv)
    given = [x is not None for x in (a.model, a.index, a.data)]
    if any(given) and not all(given): p.error('give --model, --index and --data together (or none for the demo)')
    return a


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def start_service(model, index, data, db, port, max_batch, log):
    code = ('import sys; from fbm_rank.serve import run; '
            'run(sys.argv[1], sys.argv[2], sys.argv[3], host="127.0.0.1", port=int(sys.argv[4]), db_path=sys.argv[5], '
            'max_batch=int(sys.argv[6]), log_level="warning")')
    return subprocess.Popen([sys.executable, '-c', code, str(model), str(index), str(data), str(port), str(db), str(max_batch)],
                            stdout=log, stderr=subprocess.STDOUT)


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


async def load_level(url, photos, n_clients, seconds, k):
    "Run `n_clients` clients, each sending requests back to back, for `seconds`; return latencies and errors."
    latencies, errors, statuses = [], 0, {}
    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=n_clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        deadline = time.perf_counter() + seconds
        async def one_client(c):
            nonlocal errors
            i = c
            while time.perf_counter() < deadline:
                name, data = photos[i % len(photos)]; i += n_clients
                t = time.perf_counter()
                try:
                    r = await client.post('/predict/similar_images', files={'image': (name, data, 'image/jpeg')}, data={'k': str(k)})
                    ok = r.status_code == 200 and len(r.json()['results']) > 0
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                except httpx.HTTPError as e:
                    ok = False; statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
                if ok: latencies.append(time.perf_counter() - t)
                else: errors += 1
        start = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(n_clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies)
    return dict(clients=n_clients, requests=len(lat), errors=errors, seconds=round(elapsed, 2),
                throughput_rps=round(len(lat)/elapsed, 2),
                p50_ms=round(float(np.percentile(lat, 50))*1000, 1) if len(lat) else None,
                p99_ms=round(float(np.percentile(lat, 99))*1000, 1) if len(lat) else None,
                statuses={str(k): v for k, v in statuses.items()})


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


def main(argv=None):
    a = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='bench_serve_') as work:
        work = Path(work)
        if a.model is None:
            from fbm_rank.serve import demo_service
            from fbm_rank.demo import demo_marketplace
            t = time.time()
            paths = demo_service(work/'demo', size=a.size, photo_size=256)
            model, index, data = paths['model'], paths['index'], paths['prepared']
            photos_dir = a.photos or demo_marketplace()/'images'
            print(f'demo service built in {time.time()-t:.1f} s (efficientnet_lite0: ImageNet body, untrained head; input {a.size} px)')
        else:
            model, index, data = a.model, a.index, a.data
            photos_dir = a.photos or Path(data)/'images'
        photos = query_photos(photos_dir, a.max_photos)
        print(f'machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the run')
        port = free_port()
        url = f'http://127.0.0.1:{port}'
        log_path = work/'service.log'
        with open(log_path, 'wb') as log:
            proc = start_service(model, index, data, work/'bench.sqlite', port, a.max_batch, log)
            try:
                health, startup = wait_until_up(url, proc, a.startup_timeout)
                print(f"service up in {startup:.1f} s: {health['model']['arch']} input {health['model']['size']} px, "
                      f"index {health['index']['kind']} of {health['index']['count']:,} photos ({health['index']['dim']}-d), "
                      f"{len(photos)} query photos, k={a.k}, max_batch={a.max_batch}")
                asyncio.run(load_level(url, photos, 1, min(2, a.seconds), a.k))  # warm-up
                results = []
                print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
                for n in a.levels:
                    r = asyncio.run(load_level(url, photos, n, a.seconds, a.k))
                    results.append(r)
                    print(f"{r['clients']:>7} {r['requests']:>8} {r['throughput_rps']:>7.1f} {r['p50_ms'] or float('nan'):>8.1f} "
                          f"{r['p99_ms'] or float('nan'):>8.1f} {r['errors']:>6}", flush=True)
            finally:
                proc.terminate()
                try: proc.wait(20)
                except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        if any(r['errors'] for r in results):
            print('service log (tail):\n' + log_path.read_text(errors='replace')[-3000:])
        report = dict(machine=dict(cpus=os.cpu_count(), load_average=os.getloadavg(), platform=platform.platform(),
                                   python=platform.python_version()),
                      service=dict(model=health['model'], index=health['index'], startup_s=round(startup, 1)),
                      seconds_per_level=a.seconds, k=a.k, max_batch=a.max_batch, results=results)
        if a.json: Path(a.json).write_text(json.dumps(report, indent=2) + '\n')
        return 1 if any(r['errors'] for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
