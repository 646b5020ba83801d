/**
 * Which ffmpeg a real worker process runs, as the operator sees it: on a machine whose PATH holds no
 * current ffmpeg the worker falls back to the 2018 build bundled in @ffmpeg-installer and says so at
 * start-up at warn level, naming the fix, and /readyz (to the metrics token) reports its source.
 * (The preference for a system ffmpeg ≥ 5 is checked in packages/codec/test/media.test.ts.)
 */
import { startKiln, until, type Kiln } from './helpers/kiln.ts';

const METRICS_TOKEN = 'engines-test-metrics-token-0123456789';
let kiln: Kiln;

beforeAll(async () => {
  // Node is started by its absolute path, so an empty PATH only hides system binaries from Kiln.
  kiln = await startKiln({ apps: ['gateway', 'convert-worker'], env: { PATH: '/nonexistent', METRICS_TOKEN } });
}, 120_000);
afterAll(async () => {
  await kiln?.stop();
});

test('with no current ffmpeg on PATH, the worker warns loudly that it runs the bundled 2018 build, and /readyz says so', async () => {
  // The engines are resolved and logged just after "worker ready".
  const warn = await until(
    'the worker to log its engines',
    async () =>
      kiln
        .logs()
        .split('\n')
        .find((l) => l.includes('"msg":"outdated ffmpeg:')),
    30_000,
    100,
  );
  const line = JSON.parse(warn!.replace(/^\[[^\]]+\] /, '')) as { level: string; msg: string };
  expect(line.level).toBe('warn');
  expect(line.msg).toMatch(/2018 static build/);
  expect(line.msg).toMatch(/apt-get install ffmpeg/);
  expect(line.msg).toMatch(/FFMPEG_PATH/);
  expect(kiln.logs()).toMatch(/"msg":"outdated ffprobe:/);

  const body = await until(
    'the worker heartbeat to reach /readyz',
    async () => {
      const r = await kiln.api('/readyz', { key: METRICS_TOKEN });
      const b = (await r.json()) as { engines: { ffmpeg: { source: string; version: string; warning?: string } } | null };
      return b.engines ? b : undefined;
    },
    30_000,
    200,
  );
  expect(body.engines!.ffmpeg).toMatchObject({ source: '@ffmpeg-installer', version: 'N-47683-g0e8eb07980-static', warning: expect.stringMatching(/2018/) });
});
