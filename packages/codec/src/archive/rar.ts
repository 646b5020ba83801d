/**
 * Reading RAR (RAR4 and RAR5) with 7z-wasm: 7-Zip 24.09 compiled to WebAssembly, which carries the
 * unRAR decoder (7za 16.02 from 7zip-bin does not read RAR5). A fresh module per call (≈30 ms):
 * after a failed run the module's state is not trusted. It runs inside this process, so it cannot be
 * killed on timeout the way a child process can; sizes were checked from the listing beforehand.
 */
import path from 'node:path';
import SevenZipModule from '7z-wasm';
import { CodecError } from '../errors.ts';
import { parseSlt, type SltEntry } from './sevenzip.ts';

interface RunResult {
  ok: boolean;
  out: string;
}

// The package is CommonJS whose declarations say `export default`: Node hands us module.exports.
type Factory = typeof SevenZipModule.default;
const SevenZip: Factory = ((SevenZipModule as unknown as { default?: Factory }).default ?? SevenZipModule) as Factory;

async function run(args: (mounts: { input: string; out?: string }) => string[], input: string, outDir?: string): Promise<RunResult> {
  const lines: string[] = [];
  let exitCode = 0;
  const mod = await SevenZip({
    print: (s: string) => lines.push(s),
    printErr: (s: string) => lines.push(s),
    onExit: (code: number) => {
      exitCode = code;
    },
  });
  mod.FS.mkdir('/in');
  mod.FS.mount(mod.NODEFS, { root: path.dirname(path.resolve(input)) }, '/in');
  if (outDir) {
    mod.FS.mkdir('/out');
    mod.FS.mount(mod.NODEFS, { root: path.resolve(outDir) }, '/out');
  }
  const inPath = `/in/${path.basename(input)}`;
  let threw = false;
  try {
    const r = mod.callMain(args({ input: inPath, ...(outDir ? { out: '/out' } : {}) })) as unknown;
    if (typeof r === 'number') exitCode = r;
  } catch {
    threw = true;
  }
  return { ok: !threw && exitCode === 0, out: lines.join('\n') };
}

function damaged(out: string): CodecError {
  const enc = /encrypted|password/i.test(out);
  return new CodecError(
    'invalid_input',
    enc ? 'The RAR archive is encrypted; upload it without a password.' : 'The RAR archive could not be read: it is damaged, truncated or not a RAR file.',
    { internal: out.slice(-4000) },
  );
}

export async function listRar(input: string): Promise<SltEntry[]> {
  const r = await run(({ input: i }) => ['l', '-slt', '-pkiln-no-password', '--', i], input);
  if (!r.ok) throw damaged(r.out);
  return parseSlt(r.out);
}

export async function extractRar(input: string, outDir: string): Promise<void> {
  const r = await run(({ input: i, out }) => ['x', '-pkiln-no-password', '-y', '-bd', `-o${out!}`, '--', i], input, outDir);
  if (!r.ok) throw damaged(r.out);
}
