/** The worker builds every codec limit from config once, each carrying the name of its own setting. */
import { loadConfig } from '@kiln/config';
import { codecLimits, settingsFrom } from '../src/runtime.ts';

const SETTINGS = [
  'IMAGE_MAX_PIXELS',
  'MEDIA_MAX_DURATION_SECONDS',
  'MEDIA_MAX_PIXELS',
  'MEDIA_MAX_STREAMS',
  'ARCHIVE_MAX_ENTRIES',
  'ARCHIVE_MAX_EXPANDED_BYTES',
  'ARCHIVE_MAX_EXPANSION_RATIO',
  'TRACE_MAX_PIXELS',
  'PDF_MAX_PAGES',
  'SVG_MAX_DENSITY',
  'FILE_TIMEOUT_SECONDS',
];

test('each limit carries the value of the setting it names, and no two share a setting', () => {
  // A distinct value per setting: a limit wired to the wrong setting shows up as a wrong value.
  const env = Object.fromEntries(SETTINGS.map((s, i) => [s, String(1000 + i)]));
  const config = loadConfig(env);
  const settings = settingsFrom(config);
  const all = [...Object.values(settings.limits), settings.fileTimeout];
  for (const limit of all) expect([limit.setting, limit.max]).toEqual([limit.setting, Number(env[limit.setting])]);
  expect(all.map((l) => l.setting).sort()).toEqual([...SETTINGS].sort());
});

test('the codec is told the pixel limit under the name an operator sets', () => {
  expect(codecLimits(loadConfig({ IMAGE_MAX_PIXELS: '5000' })).pixels).toEqual({ max: 5000, setting: 'IMAGE_MAX_PIXELS' });
});
