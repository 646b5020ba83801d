/**
 * What the chaos tests share: a video long enough to be mid-file when something breaks, a look at
 * the engines and scratch folders a Kiln has running, and direct reads of its rows.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { resolveFfmpeg, resolveFfprobe } from '@kiln/codec';
import { makeClip, makeTempDir, rawProbe } from '../../packages/codec/test/helpers/media-fixtures.ts';

const exec = promisify(execFile);

export { rawProbe };

/**
 * An H.264 + AAC MP4 of `seconds` (a 4 s 640×360 clip looped without re-encoding): converting it to
 * MP4 again takes a few seconds per 40 s on two cores, long enough to be caught mid-file.
 */
export async function longVideo(seconds = 40): Promise<{ bytes: Buffer; ffprobe: string; cleanup: () => Promise<void> }> {
  const [ffmpeg, ffprobe] = await Promise.all([resolveFfmpeg(), resolveFfprobe()]);
  const { dir, cleanup } = await makeTempDir('chaos-media');
  const loop = await makeClip(ffmpeg.path, path.join(dir, 'loop.mp4'), { seconds: 4, video: { width: 640, height: 360, rate: 25 }, audio: {}, format: 'mp4' });
  const out = path.join(dir, 'long.mp4');
  await exec(ffmpeg.path, ['-nostdin', '-v', 'error', '-y', '-stream_loop', String(Math.ceil(seconds / 4) - 1), '-i', loop, '-c', 'copy', '-f', 'mp4', out], { timeout: 60_000 });
  return { bytes: await fs.readFile(out), ffprobe: ffprobe.path, cleanup };
}

/** Running processes named `name` whose command line mentions `needle` (a Kiln's DATA_DIR), with their parent pid. */
export async function processesOf(name: string, needle: string): Promise<{ pid: number; ppid: number; startTime: string }[]> {
  const found: { pid: number; ppid: number; startTime: string }[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').then(
      (s) => s.split('\0'),
      () => [],
    );
    if (!argv[0] || path.basename(argv[0]) !== name || !argv.some((a) => a.includes(needle))) continue;
    const stat = await processStat(Number(entry));
    if (!stat || stat.state === 'Z') continue;
    found.push({ pid: Number(entry), ppid: stat.ppid, startTime: stat.startTime });
  }
  return found;
}

/** A process's state, parent and start time (clock ticks since boot) from /proc/PID/stat; undefined once it is reaped. */
async function processStat(pid: number): Promise<{ state: string; ppid: number; startTime: string } | undefined> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return undefined;
  // Fields after the command name (which may hold spaces): state is field 3, ppid 4, starttime 22.
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: after[0]!, ppid: Number(after[1]), startTime: after[19]! };
}

/**
 * Whether the process `p` (found by processesOf) has ended: reaped, a zombie or dead (Z, X), or its
 * pid now names another process (another start time). A process that is exiting has released its
 * memory (its cmdline reads empty) before its state turns Z, so "no longer listed by processesOf"
 * alone is not the end yet.
 */
export async function hasEnded(p: { pid: number; startTime: string }): Promise<boolean> {
  const s = await processStat(p.pid);
  return !s || s.state === 'Z' || s.state === 'X' || s.startTime !== p.startTime;
}

/** The scratch folders (`w-…`) a local-disk Kiln has open under DATA_DIR/blobs/.tmp. */
export async function scratchFolders(dataDir: string): Promise<string[]> {
  const tmp = path.join(dataDir, 'blobs', '.tmp');
  const names = await fs.readdir(tmp).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith('w-')).map((n) => path.join(tmp, n));
}

/** Files under a job's output folder (`jobs/<id>/out`) in a local-disk store. */
export async function outputBlobs(dataDir: string, jobId: string): Promise<string[]> {
  return fs.readdir(path.join(dataDir, 'blobs', 'jobs', jobId, 'out')).catch(() => [] as string[]);
}

export interface FileRow {
  id: string;
  jobId: string;
  status: string;
  attempts: number;
  outputFileId: string | null;
}

export function sql(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined);
  return {
    pool,
    files: async (jobId: string): Promise<FileRow[]> =>
      (await pool.query<FileRow>('SELECT id, job_id AS "jobId", status, attempts, output_file_id AS "outputFileId" FROM job_files WHERE job_id = $1 ORDER BY idx', [jobId])).rows,
    storedFiles: async (jobId: string): Promise<number> => Number((await pool.query('SELECT count(*) AS n FROM stored_files WHERE job_id = $1', [jobId])).rows[0].n),
    instances: async (): Promise<{ id: string; pid: number }[]> => (await pool.query('SELECT id, pid FROM worker_instances')).rows,
    holds: async (): Promise<{ fileId: string; instanceId: string; scratchDir: string | null }[]> =>
      (await pool.query('SELECT file_id AS "fileId", instance_id AS "instanceId", scratch_dir AS "scratchDir" FROM worker_holds')).rows,
    end: () => pool.end(),
  };
}

export async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/** Keeps a Kiln's logs in test-output/chaos/<name>.log (ignored by git) for a failure to be read after the run. */
export async function keepLogs(name: string, logs: string): Promise<void> {
  const dir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../test-output/chaos');
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, `${name}.log`), logs);
}
