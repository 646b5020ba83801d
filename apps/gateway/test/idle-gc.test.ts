/**
 * idle-gc.ts: after a burst has grown the RSS, the first quiet period runs one memory-reducing
 * collection, and no more until the RSS grows again; a busy period never does. The collection
 * itself is V8's low-memory one (the reducing kind, which unmaps the page pool), run in a child
 * process so that a deadlock in closing the inspector session fails the test instead of hanging it.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IDLE_GC_GROWTH_BYTES, IDLE_UTILIZATION, createIdleCollector } from '../src/idle-gc.ts';

const MB = 1024 * 1024;

/** A collector over a scripted process: `rss` and `busy` are what the next tick reads. */
function scripted() {
  const state = { rss: 100 * MB, busy: 0, collections: 0, rssAfterCollection: 100 * MB };
  const collector = createIdleCollector({
    rss: () => state.rss,
    utilization: () => state.busy,
    collect: async () => {
      state.collections++;
      state.rss = state.rssAfterCollection;
    },
  });
  return { state, tick: collector.tick };
}

test('the first quiet period after a burst that grew the RSS runs one collection', async () => {
  const { state, tick } = scripted();
  // The burst: busy periods while the RSS grows well past the threshold.
  state.busy = 0.6;
  for (const rss of [120, 160, 200]) {
    state.rss = rss * MB;
    expect(await tick()).toBe(false);
  }
  expect(state.collections).toBe(0);
  // The load stops.
  state.busy = 0.001;
  expect(await tick()).toBe(true);
  expect(state.collections).toBe(1);
  // Still quiet, the RSS back near where it started: nothing more to do.
  expect(await tick()).toBe(false);
  expect(await tick()).toBe(false);
  expect(state.collections).toBe(1);
});

test('a busy period never collects, however much the RSS grew', async () => {
  const { state, tick } = scripted();
  state.busy = IDLE_UTILIZATION + 0.01;
  state.rss = 300 * MB;
  for (let i = 0; i < 5; i++) expect(await tick()).toBe(false);
  expect(state.collections).toBe(0);
});

test('growth below IDLE_GC_GROWTH_BYTES is left alone, measured from the lowest RSS seen', async () => {
  const { state, tick } = scripted();
  state.rss = 100 * MB + IDLE_GC_GROWTH_BYTES - MB;
  expect(await tick()).toBe(false);
  // It dips, then grows again by less than the threshold from the dip: still nothing.
  state.rss = 90 * MB;
  expect(await tick()).toBe(false);
  state.rss = 90 * MB + IDLE_GC_GROWTH_BYTES - MB;
  expect(await tick()).toBe(false);
  expect(state.collections).toBe(0);
  // From the dip, the threshold is passed.
  state.rss = 90 * MB + IDLE_GC_GROWTH_BYTES;
  expect(await tick()).toBe(true);
  expect(state.collections).toBe(1);
});

test('memory a collection could not give back does not bring another one', async () => {
  const { state, tick } = scripted();
  state.rss = 200 * MB;
  state.rssAfterCollection = 190 * MB;
  expect(await tick()).toBe(true);
  expect(await tick()).toBe(false);
  expect(state.collections).toBe(1);
  // Only growth beyond what stayed brings the next.
  state.rss = 190 * MB + IDLE_GC_GROWTH_BYTES;
  expect(await tick()).toBe(true);
  expect(state.collections).toBe(2);
});

test('a failing collection is reported and the next growth is still handled', async () => {
  const errors: unknown[] = [];
  let rss = 100 * MB;
  let fail = true;
  const collector = createIdleCollector({
    rss: () => rss,
    utilization: () => 0,
    collect: async () => {
      if (fail) throw new Error('no gc in this process');
      rss = 100 * MB;
    },
    onError: (err) => errors.push(err),
  });
  rss = 200 * MB;
  await collector.tick();
  expect(errors).toHaveLength(1);
  expect(String(errors[0])).toMatch(/no gc/);
  fail = false;
  rss = 200 * MB + IDLE_GC_GROWTH_BYTES;
  expect(await collector.tick()).toBe(true);
  expect(rss).toBe(100 * MB);
});

test("lowMemoryCollection runs V8's memory-reducing collection: the churn's pages go back to the system", () => {
  const module = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'idle-gc.ts');
  // In a child with --trace-gc, whose lines name each collection's kind: a reducing one prints
  // "Mark-Compact (reduce)". A churn the size of a busy gateway's leaves V8 holding ~100s of MB;
  // an ordinary gc() leaves them pooled (RSS unchanged), the reducing one returns them.
  const script = `
    import { lowMemoryCollection } from ${JSON.stringify(module)};
    let keep = [];
    for (let r = 0; r < 60; r++) {
      const a = [];
      for (let i = 0; i < 20000; i++) a.push({ i, s: 'x'.repeat(50) + i, o: [i, i + 1] });
      keep.push(a);
      if (keep.length > 15) keep.shift();
    }
    keep = [];
    const before = process.memoryUsage.rss();
    await lowMemoryCollection();
    process.stdout.write(JSON.stringify({ before, after: process.memoryUsage.rss() }) + '\\n');
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-semi-space-size=1', '--trace-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(-2000) }).toEqual({ status: 0, signal: null, stderr: expect.any(String) });
  expect(r.stdout).toMatch(/Mark-Compact \(reduce\)/);
  const { before, after } = JSON.parse(r.stdout.trimEnd().split('\n').at(-1)!) as { before: number; after: number };
  expect(before).toBeGreaterThan(200 * MB);
  expect(after).toBeLessThan(before / 2);
});

test('without --expose-gc lowMemoryCollection fails and says which flag and which setting', () => {
  const module = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'idle-gc.ts');
  const script = `
    import { lowMemoryCollection } from ${JSON.stringify(module)};
    await lowMemoryCollection().then(() => process.stdout.write('collected'), (e) => process.stdout.write(e.message));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stdout).toMatch(/--expose-gc.*GATEWAY_IDLE_GC_SECONDS=0/);
});
