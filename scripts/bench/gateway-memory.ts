/**
 * The gateway's memory after sustained small-job load, for the performance work behind `pnpm bench`
 * (not part of it):
 *   node scripts/bench/gateway-memory.ts [--jobs 6000] [--in-flight 8] [--idle-seconds 10] [--upload-mb 2048]
 * Starts Kiln as the benchmark does, reads the gateway's RSS (/proc/<pid>/status) and V8 heap
 * (its /metrics) at start, every 1,000 small sync jobs (64×64 PNG → webp, POST /api/convert + GET
 * of the link), then each second while idle, times 10 sequential jobs, then samples RSS every 50 ms
 * during one streamed upload as the bench's `upload` figure does. Any Kiln setting in the
 * environment is passed through; with LOG_LEVEL=debug the gateway's idle collections are printed.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertViaApi, multipart, request } from './client.ts';
import { tinyImage } from './corpus.ts';
import { rssMb, startKiln, cpuByRole, uploadSamplingRss } from './kiln-process.ts';
import { closedLoop } from './stats.ts';

const { values: a } = parseArgs({
  options: {
    jobs: { type: 'string' },
    'in-flight': { type: 'string' },
    'idle-seconds': { type: 'string' },
    'upload-mb': { type: 'string' },
  },
});
const JOBS = Number(a.jobs ?? 6000);
const IN_FLIGHT = Number(a['in-flight'] ?? 8);
const IDLE_SECONDS = Number(a['idle-seconds'] ?? 10);
const UPLOAD_BYTES = Math.round(Number(a['upload-mb'] ?? 2048) * 1024 * 1024);

const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-gwmem-'));
const tiny = await tinyImage(scratch);
const form = multipart({ format: 'webp', saveToStorage: 'true' }, { data: await fs.readFile(tiny.path), filename: 'tiny.png' });
// The gateway's own line for each idle collection (at LOG_LEVEL=debug), as it happens.
const onLog = (line: string) => {
  if (line.includes('"msg":"idle collection')) console.log(`        gateway: ${line}`);
};
const kiln = await startKiln({ onLog, env: process.env.MAX_UPLOAD_BYTES ? {} : { MAX_UPLOAD_BYTES: String(UPLOAD_BYTES + (1 << 20)) } });
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(1).padStart(6);

async function heap(): Promise<string> {
  const r = await request(`${kiln.url}/metrics`);
  const text = r.body.toString('utf8');
  const mb = (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? (Number(m[1]) / 1024 ** 2).toFixed(1) : '?';
  };
  const old = /^nodejs_heap_space_size_total_bytes\{space="old"\} (\S+)$/m.exec(text);
  return `heap used ${mb('nodejs_heap_size_used_bytes')} total ${mb('nodejs_heap_size_total_bytes')} (old ${old ? (Number(old[1]) / 1024 ** 2).toFixed(1) : '?'}) external ${mb('nodejs_external_memory_bytes')} MB`;
}

try {
  const gw = kiln.pidOf('gateway');
  if (!gw) throw new Error('gateway process not found');
  const line = async (what: string) => console.log(`${secs()} s  ${what.padEnd(22)} RSS ${rssMb(gw)?.toFixed(1)} MB  ${await heap()}`);
  await line('started');
  const cpu0 = cpuByRole(kiln.supervisorPid);
  const jobsT0 = performance.now();
  for (let done = 0; done < JOBS; done += 1000) {
    const n = Math.min(1000, JOBS - done);
    await closedLoop(
      Array.from({ length: n }, () => form),
      IN_FLIGHT,
      async (f) => {
        await convertViaApi(kiln.url, kiln.key, f);
      },
    );
    await line(`after ${done + n} jobs`);
  }
  const cpu1 = cpuByRole(kiln.supervisorPid);
  console.log(
    `${JOBS} jobs in ${((performance.now() - jobsT0) / 1000).toFixed(1)} s; gateway CPU ${((cpu1.gateway - cpu0.gateway) / JOBS).toFixed(2)} ms/job (metrics reads included)`,
  );
  const idleCpu0 = cpuByRole(kiln.supervisorPid).gateway;
  for (let s = 1; s <= IDLE_SECONDS; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    console.log(`${secs()} s  ${`idle ${s} s`.padEnd(22)} RSS ${rssMb(gw)?.toFixed(1)} MB`);
  }
  await line(`idle ${IDLE_SECONDS} s`);
  console.log(`gateway CPU while idle: ${(cpuByRole(kiln.supervisorPid).gateway - idleCpu0).toFixed(0)} ms over ${IDLE_SECONDS} s`);
  // The first requests after the idle period: what a collection there costs the next client.
  const after: number[] = [];
  for (let i = 0; i < 10; i++) after.push((await convertViaApi(kiln.url, kiln.key, form)).completedMs);
  console.log(`first 10 sequential jobs after the idle period: ${after.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  const { upload: up, baselineRss: baseline, peakRss: peak } = await uploadSamplingRss(kiln.url, kiln.key, gw, UPLOAD_BYTES);
  console.log(
    `upload ${(UPLOAD_BYTES / 1024 ** 2).toFixed(0)} MiB: HTTP ${up.status} in ${up.seconds.toFixed(1)} s; gateway RSS baseline ${baseline.toFixed(1)} MB, peak ${peak.toFixed(1)} MB`,
  );
  await line('after the upload');
} finally {
  await kiln.stop();
  await fs.rm(scratch, { recursive: true, force: true });
}
