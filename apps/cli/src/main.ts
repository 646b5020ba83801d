/**
 * `pnpm kiln` — Kiln's command-line client. Converts or compresses local files through the HTTP API
 * (a key from KILN_API_KEY, the server from KILN_URL or --url), with a progress bar for the upload and
 * one for the job, which it follows over the job's event stream. Exit codes: see EXIT in api.ts.
 *
 * Libraries: node:util's parseArgs for arguments, eventsource-parser (the parser behind the
 * `eventsource` package) for the event stream, cli-progress for the bars (drawn only on a terminal;
 * elsewhere the CLI prints one line per step).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import type { JobDetail } from '@kiln/contracts';
import { CliError, EXIT, download, followJob, getJob, uploadJob, type Client, type JobEvent, type UploadFile } from './api.ts';

const HELP = `Usage: pnpm kiln <command> [options]

Commands:
  convert <file...> --to <format>   upload files, convert them, follow the job, print the results
  compress <file...>                the same, keeping a compatible format and making files smaller
  status <jobId>                    print a job as it is now
  wait <jobId>                      follow a job until it ends

Options:
  --to <format>           convert: the output format (webp, jpg, png, avif, pdf, mp4, webm, mp3, zip…)
  --resize <preset>       original, website, email, instagram, linkedin, ecommerce, square, width, height
  --width <px>, --height <px>   for --resize width/height/square
  --quality <1-100>       encoder quality (convert: compression; compress: quality)
  --target-bytes <n>      compress: aim at this size (mode target-size)
  --lossless              compress: no pixel changes
  --out <dir>             download the results into this folder
  --no-wait               convert/compress: print the job id and exit after the upload
  --json                  print the final job as JSON on stdout
  --url <url>             the server (default: KILN_URL, else http://localhost:8080)
  -h, --help              this text

Environment: KILN_API_KEY (required: a key from \`pnpm keys:create <name>\` or the dashboard), KILN_URL.
Exit codes: 0 done; 1 the job or one of its files failed; 2 usage error; 3 server unreachable;
            4 key refused (401/403); 5 request refused (bad field, unsupported format, too large, 5xx);
            70 anything unexpected.`;

const OPTIONS = {
  to: { type: 'string' },
  resize: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  quality: { type: 'string' },
  'target-bytes': { type: 'string' },
  lossless: { type: 'boolean' },
  out: { type: 'string' },
  'no-wait': { type: 'boolean' },
  json: { type: 'boolean' },
  url: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const usage = (msg: string) => new CliError(EXIT.usage, `${msg}\nRun \`pnpm kiln --help\` for the commands and options.`);
const log = (line: string) => process.stderr.write(`${line}\n`);
const tty = Boolean(process.stderr.isTTY);
// `pnpm kiln` runs in the repository's root: paths are the caller's, from where pnpm was started.
const cwd = process.env.INIT_CWD ?? process.cwd();

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

function bar(label: string, total: number, unit: 'bytes' | 'percent') {
  const b = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      hideCursor: true,
      format: `${label.padEnd(10)} {bar} {percentage}% | {detail}`,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? (unit === 'bytes' ? fmtBytes(v) : String(v)) : String(v)),
    },
    cliProgress.Presets.shades_classic,
  );
  if (tty) b.start(total, 0, { detail: '' });
  return {
    update: (value: number, detail: string) => tty && b.update(value, { detail }),
    stop: () => tty && b.stop(),
  };
}

function positiveInt(name: string, v: string | undefined, max = Number.MAX_SAFE_INTEGER): string | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw usage(`--${name} must be a whole number from 1 to ${max === Number.MAX_SAFE_INTEGER ? 'up' : max}; got "${v}".`);
  return v;
}

async function filesFrom(args: string[]): Promise<UploadFile[]> {
  if (!args.length) throw usage('Name at least one file to upload.');
  const out: UploadFile[] = [];
  for (const a of args) {
    const p = path.resolve(cwd, a);
    const st = await fs.stat(p).catch(() => undefined);
    if (!st?.isFile()) throw usage(`${a}: no such file.`);
    out.push({ path: p, name: path.basename(p), size: st.size });
  }
  return out;
}

async function follow(c: Client, jobId: string): Promise<JobDetail> {
  const b = bar('Converting', 100, 'percent');
  let lastLine = '';
  const say = (line: string) => {
    if (!tty && line !== lastLine) log(line);
    lastLine = line;
  };
  const detail = (d: { status: string; completedFiles: number; failedFiles: number; totalFiles: number }) =>
    `${d.status}, ${d.completedFiles + d.failedFiles}/${d.totalFiles} files${d.failedFiles ? `, ${d.failedFiles} failed` : ''}`;
  try {
    return await followJob(c, jobId, (e: JobEvent) => {
      switch (e.event) {
        case 'snapshot':
        case 'progress':
          b.update(e.data.progress, detail(e.data));
          say(`job ${jobId}: ${e.data.status} ${e.data.progress}%`);
          break;
        case 'file':
          if (!tty) log(`  ${e.data.filename}: ${e.data.status}${e.data.error ? ` (${e.data.error.code}: ${e.data.error.message})` : ''}`);
          break;
        case 'completed':
        case 'failed':
          b.update(e.data.progress, detail(e.data));
          break;
      }
    });
  } finally {
    b.stop();
  }
}

/** Prints the outcome, downloads into --out, and returns the exit code. */
async function finish(c: Client, job: JobDetail, opts: { out?: string; json?: boolean }): Promise<number> {
  const saved = new Map<number, string>();
  if (opts.out && job.status === 'completed') {
    const dir = path.resolve(cwd, opts.out);
    await fs.mkdir(dir, { recursive: true });
    for (const r of job.results) if (r.downloadUrl) saved.set(r.index, await download(c, r.downloadUrl, dir, r.filename));
    if (job.archive) await download(c, job.archive.downloadUrl, dir, job.archive.filename);
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
  log(`Job ${job.jobId} ${job.status}${job.errorMessage ? `: ${job.errorMessage}` : ''}`);
  for (const r of job.results) {
    if (r.status === 'completed') {
      const where = saved.get(r.index) ?? r.downloadUrl;
      const size = r.finalSize === null ? '' : ` ${fmtBytes(r.originalSize)} → ${fmtBytes(r.finalSize)}`;
      log(`  ✓ ${r.filename}${size}`);
      if (!opts.json) process.stdout.write(`${where}\n`);
    } else {
      log(`  ✗ ${r.filename}: ${r.status}${r.error ? ` (${r.error.code}: ${r.error.message})` : ''}`);
    }
  }
  const failed = job.status === 'failed' || job.results.some((r) => r.status === 'failed');
  return failed ? EXIT.jobFailed : EXIT.ok;
}

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parse = () => {
    try {
      return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (err) {
      throw usage((err as Error).message);
    }
  };
  const { values: o, positionals } = parse();
  const [command, ...rest] = positionals;
  if (o.help || !command) {
    process.stdout.write(`${HELP}\n`);
    return o.help ? EXIT.ok : EXIT.usage;
  }
  if (!['convert', 'compress', 'status', 'wait'].includes(command)) throw usage(`Unknown command "${command}".`);
  const key = env.KILN_API_KEY?.trim();
  if (!key) throw usage('Set KILN_API_KEY to an API key (create one with `pnpm keys:create <name>` or in the dashboard).');
  let base: URL;
  try {
    base = new URL(o.url ?? env.KILN_URL ?? 'http://localhost:8080');
    if (!/^https?:$/.test(base.protocol)) throw new Error('not http');
  } catch {
    throw usage(`--url / KILN_URL must be an http(s) URL; got "${o.url ?? env.KILN_URL}".`);
  }
  const c: Client = { base, key };

  if (command === 'status' || command === 'wait') {
    const jobId = rest[0];
    if (!jobId || rest.length > 1) throw usage(`${command} takes one job id.`);
    if (command === 'status') {
      const job = await getJob(c, jobId);
      if (!o.json) log(`Job ${job.jobId}: ${job.status}, ${job.progress}% (${job.completedFiles} ok, ${job.failedFiles} failed of ${job.totalFiles})`);
      if (job.status === 'completed' || job.status === 'failed') return finish(c, job, o);
      if (o.json) process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
      return EXIT.ok;
    }
    return finish(c, await follow(c, jobId), o);
  }

  const files = await filesFrom(rest);
  const fields: Record<string, string> = {};
  if (command === 'convert') {
    if (!o.to) throw usage('convert needs --to <format>, e.g. --to webp.');
    fields.format = o.to;
    const q = positiveInt('quality', o.quality, 100);
    if (q) fields.compression = q;
  } else {
    fields.jobType = 'compress';
    const q = positiveInt('quality', o.quality, 100);
    if (q) fields.quality = q;
    const t = positiveInt('target-bytes', o['target-bytes']);
    if (t) {
      fields.mode = 'target-size';
      fields.targetBytes = t;
    }
    if (o.lossless) fields.lossless = 'true';
  }
  if (o.resize) fields.resize = o.resize;
  const w = positiveInt('width', o.width);
  if (w) fields.resizeWidth = w;
  const h = positiveInt('height', o.height);
  if (h) fields.resizeHeight = h;

  const total = files.reduce((n, f) => n + f.size, 0);
  log(`Uploading ${files.length === 1 ? files[0]!.name : `${files.length} files`} (${fmtBytes(total)}) to ${base.origin}`);
  const up = bar('Uploading', total, 'bytes');
  let sent = 0;
  let created: { jobId: string };
  try {
    created = await uploadJob(c, fields, files, (n) => {
      sent += n;
      up.update(sent, `${fmtBytes(sent)} of ${fmtBytes(total)}`);
    });
  } finally {
    up.stop();
  }
  log(`Job ${created.jobId} created`);
  if (o['no-wait']) {
    process.stdout.write(`${created.jobId}\n`);
    return EXIT.ok;
  }
  return finish(c, await follow(c, created.jobId), o);
}

// Run only as a program (`node apps/cli/src/main.ts …`), never on import.
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli/src/main.ts')) {
  run(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof CliError) {
        log(err.message);
        process.exitCode = err.exitCode;
      } else {
        log(`kiln: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        process.exitCode = EXIT.internal;
      }
    },
  );
}
