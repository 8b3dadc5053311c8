"""Writes to the fbm_rank catalogue over HTTP: writes per second by kind, and read latency while writes go on.

Starts `fbm_rank serve` in a child process on 127.0.0.1 at a free port (the demo unless --model/--index/--data) and
talks to it over HTTP only:
1. writes alone, one client, back to back for --seconds each: add (POST /products, one photo), update (PATCH
   /products/{id}, a new price), remove (DELETE /products/{id} of the listings just added): writes/s, p50/p99;
2. reads alone: --readers clients sending word searches (GET /search) and similar listings (GET
   /products/{id}/similar) for --seconds: p50/p99 of each;
3. the same reads while one writer sends --write-rate writes a second (add, update, remove in turn): p50/p99 of each
   read, as a share of the reads alone, and the writes' own latency.
Goals (issue #19, on this CPU): update and remove p50 under 20 ms; searches and similar listings p50 within 20% of
their figure without writes, at 5 writes/s. Every figure is printed with the load averages: client and service share
the machine.

    python bench/bench_writes.py                  # demo service, 10 s per phase
    python bench/bench_writes.py --quick          # under a minute
    python bench/bench_writes.py --model MODEL --index INDEX --data PREPARED --json writes.json

Exit status 1 when a request failed or the service died; the goals are reported, not enforced.
"""
import argparse, asyncio, io, json, sys, tempfile, time
from pathlib import Path
import numpy as np
import httpx
from common import add_service_folders, check_folders, load
from bench_serve import demo_folders, start_service, wait_until_up, summary, query_photos, fbm_rank_command

KINDS = ('add', 'update', 'remove')
GOAL_WRITE_P50_MS, GOAL_READ_SLOWDOWN = 20, 1.2


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_service_folders(p, 1, 'folder of photos for the added listings (default: the prepared photos)')
    p.add_argument('--seconds', type=float, default=10, help='length of each phase (default 10)')
    p.add_argument('--readers', type=int, default=4, help='concurrent reading clients (default 4)')
    p.add_argument('--write-rate', type=float, default=5, help='writes a second during the reads (default 5)')
    p.add_argument('--quick', action='store_true', help='3 s phases: a smoke check in under a minute')
    a = p.parse_args(argv)
    check_folders(p, a)
    if a.quick: a.seconds = 3
    return a


class Writer:
    "Writes of each kind against one service: adds new listings, updates and removes the ones it added."
    def __init__(self, client, photos):
        self.client, self.photos, self.mine, self.n = client, photos, [], 0
        self.latency = {k: [] for k in KINDS}; self.failures = []
    async def write(self, kind):
        self.n += 1
        if kind != 'add' and not self.mine: kind = 'add'   # nothing of its own to change yet
        t = time.perf_counter()
        if kind == 'add':
            name, data = self.photos[self.n % len(self.photos)]
            r = await self.client.post('/products', data={'name': f'Bench listing {self.n}', 'category': 'Other Goods', 'price': '£10'},
                                       files={'photos': (name, data, 'image/jpeg')})
            ok = r.status_code == 201
            if ok: self.mine.append(r.json()['product_id'])
        elif kind == 'update':
            r = await self.client.patch(f'/products/{self.mine[self.n % len(self.mine)]}', json={'price': f'£{self.n % 500 + 1}'})
            ok = r.status_code == 200
        else:
            r = await self.client.delete(f'/products/{self.mine.pop()}')
            ok = r.status_code == 204
        if ok: self.latency[kind].append(time.perf_counter() - t)
        elif len(self.failures) < 5: self.failures.append(f'{kind} {r.status_code}: {r.text[:200]}')
        return ok


def pct_ms(lat, q): return round(float(np.percentile(lat, q))*1000, 1) if len(lat) else None


async def writes_alone(client, photos, seconds):
    "Each kind of write back to back for `seconds`: writes/s, p50 and p99 of each."
    w, out = Writer(client, photos), {}
    for kind in KINDS:
        start, n, errors = time.perf_counter(), 0, 0
        while time.perf_counter() - start < seconds and (kind != 'remove' or w.mine):
            errors += not await w.write(kind); n += 1
        took = time.perf_counter() - start
        out[kind] = dict(writes=len(w.latency[kind]), errors=errors, writes_per_s=round(len(w.latency[kind])/took, 1),
                         p50_ms=pct_ms(w.latency[kind], 50), p99_ms=pct_ms(w.latency[kind], 99))
        w.latency[kind] = []
    return out, w.failures


async def reads(client, words, listing_ids, readers, seconds, writer=None, write_rate=0):
    "`readers` clients alternating word searches and similar listings for `seconds` (with `writer` at `write_rate` a second)."
    lat, errors = {'search': [], 'similar': []}, 0
    deadline = time.perf_counter() + seconds
    async def reader(c):
        nonlocal errors
        i = c
        while time.perf_counter() < deadline:
            kind = 'search' if i % 2 == 0 else 'similar'
            t = time.perf_counter()
            r = await (client.get('/search', params={'q': words[i % len(words)], 'k': 10}) if kind == 'search'
                       else client.get(f'/products/{listing_ids[i % len(listing_ids)]}/similar', params={'k': 10}))
            if r.status_code == 200: lat[kind].append(time.perf_counter() - t)
            else: errors += 1
            i += readers
    async def writing():
        nonlocal errors
        n = 0
        while time.perf_counter() < deadline:
            errors += not await writer.write(KINDS[n % len(KINDS)]); n += 1
            await asyncio.sleep(max(0.0, (n / write_rate) - (time.perf_counter() - (deadline - seconds))))
    await asyncio.gather(*[reader(c) for c in range(readers)], *([writing()] if writer else []))
    return {k: dict(requests=len(v), p50_ms=pct_ms(v, 50), p99_ms=pct_ms(v, 99)) for k, v in lat.items()}, errors


async def bench(url, photos, words, listing_ids, a):
    limits = httpx.Limits(max_connections=a.readers + 2)
    async with httpx.AsyncClient(base_url=url, timeout=a.timeout, limits=limits) as client:
        alone, failures = await writes_alone(client, photos, a.seconds)
        print(f"{'writes alone':<14} {'writes':>7} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        for kind, r in alone.items():
            print(f"{kind:<14} {r['writes']:>7} {r['writes_per_s']:>7.1f} {r['p50_ms'] or float('nan'):>8.1f} {r['p99_ms'] or float('nan'):>8.1f} {r['errors']:>6}  load {load()}")
        base, base_errors = await reads(client, words, listing_ids, a.readers, a.seconds)
        writer = Writer(client, photos)
        during, during_errors = await reads(client, words, listing_ids, a.readers, a.seconds, writer, a.write_rate)
        written = sum(len(v) for v in writer.latency.values())
        print(f"\nreads, {a.readers} clients: {'alone p50/p99 ms':>18} {f'with {a.write_rate:g} writes/s':>20} {'p50 ratio':>10}")
        for kind in base:
            b, d = base[kind], during[kind]
            ratio = d['p50_ms'] / b['p50_ms'] if b['p50_ms'] and d['p50_ms'] else None
            d['p50_ratio'] = round(ratio, 3) if ratio else None
            print(f"{kind:<28} {b['p50_ms']:>8} / {b['p99_ms']:<8} {d['p50_ms']:>9} / {d['p99_ms']:<8} {ratio or float('nan'):>10.2f}  load {load()}")
        print(f'writes during the reads: {written} in {a.seconds:g} s ({written/a.seconds:.1f}/s), '
              + ', '.join(f'{k} p50 {pct_ms(v, 50)} ms' for k, v in writer.latency.items() if v))
    goals = {'update p50 < 20 ms': (alone['update']['p50_ms'] or 1e9) < GOAL_WRITE_P50_MS,
             'remove p50 < 20 ms': (alone['remove']['p50_ms'] or 1e9) < GOAL_WRITE_P50_MS,
             **{f'{k} p50 within 20% during writes': (during[k].get('p50_ratio') or 1e9) <= GOAL_READ_SLOWDOWN for k in base}}
    print('goals: ' + '; '.join(f"{g}: {'met' if ok else 'MISSED'}" for g, ok in goals.items()))
    errors = sum(r['errors'] for r in alone.values()) + base_errors + during_errors
    return dict(writes_alone=alone, reads_alone=base, reads_during_writes=during, write_rate=a.write_rate, readers=a.readers,
                goals=goals, errors=errors, failures=failures + writer.failures)


def main(argv=None):
    a = parse_args(argv)
    import pandas as pd
    from fbm_rank.testing import free_port
    with tempfile.TemporaryDirectory() as tmp:
        model, index, data = (a.model, a.index, a.data) if a.model else demo_folders(a.demo or Path(tmp)/'demo', a.demo_epochs)
        listings = pd.read_parquet(Path(data)/'listings.parquet')
        words = [w for w in listings.name.dropna().str.split().str[0].unique()[:50]] or ['table']
        listing_ids = list(listings.product_id[:50])
        photos = query_photos(a.photos or Path(data)/'images', 32)
        port = free_port(); url = f'http://127.0.0.1:{port}'
        with open(Path(tmp)/'service.log', 'w') as log:
            proc = start_service(model, index, data, Path(tmp)/'catalogue.sqlite', port, log)
            try:
                health, took = wait_until_up(url, proc, a.startup_timeout)
                print(f"service up in {took:.1f} s: {health['counts']['products']} listings; {a.seconds:g} s per phase; load {load()}\n")
                res = asyncio.run(bench(url, photos, words, listing_ids, a))
                alive = proc.poll() is None
            finally:
                proc.terminate(); proc.wait(30)
        if not alive: res['errors'] += 1; print('the service died')
    for f in res['failures']: print('failed:', f)
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))
    return 1 if res['errors'] else 0


if __name__ == '__main__': sys.exit(main())
