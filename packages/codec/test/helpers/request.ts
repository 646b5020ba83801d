/** A ConvertRequest with the defaults a worker would pass, for codec tests. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { InputKind, OutputFormat } from '@kiln/formats';
import { convert, type ConvertRequest } from '../../src/index.ts';
import { LIMITS, timeout } from './limits.ts';

export function request(input: string, inputKind: InputKind, format: OutputFormat, outputDir: string, extra: Partial<ConvertRequest> = {}): ConvertRequest {
  return {
    input,
    inputKind,
    outputDir,
    format,
    quality: 82,
    autoOrient: true,
    stripMetadata: true,
    lossless: false,
    mono: false,
    limits: LIMITS,
    engines: {},
    animation: { maxFps: 15, maxWidth: 480 },
    avifEffort: 2,
    timeout: timeout(60),
    ...extra,
  };
}

/**
 * A per-test-file scratch folder with two helpers: `file` writes a fixture into it, `run` converts
 * into a fresh output folder inside it. Call at the top level of a test file (it registers hooks).
 */
export function useScratch(prefix: string) {
  const state = { dir: '', n: 0 };
  beforeAll(async () => {
    state.dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  });
  afterAll(async () => {
    await fs.rm(state.dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return state.dir;
    },
    /** A fresh unique path inside the scratch folder (not created). */
    name(stem: string): string {
      return path.join(state.dir, `${stem}-${state.n++}`);
    },
    async file(name: string, data: Buffer | string): Promise<string> {
      const p = path.join(state.dir, `${state.n++}-${name}`);
      await fs.writeFile(p, data);
      return p;
    },
    async run(input: string, kind: InputKind, format: OutputFormat, extra: Partial<ConvertRequest> = {}) {
      const out = path.join(state.dir, `out-${state.n++}`);
      await fs.mkdir(out);
      return convert(request(input, kind, format, out, extra));
    },
  };
}
