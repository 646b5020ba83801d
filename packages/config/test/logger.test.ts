/** The logger: pino's JSON lines as Kiln writes them, pino-pretty for people, and no secret in any line. */
import { Writable } from 'node:stream';
import { createLogger, loadConfig, loggerFor, type LogFormat } from '../src/index.ts';
import { issues } from './helpers.ts';

/** A logger whose lines land in memory, as they would reach stdout. */
function capture(level: 'debug' | 'info' = 'debug', format: LogFormat = 'json', secrets: string[] = []) {
  let text = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  const log = createLogger('gateway', level, { destination, format, secrets });
  return { log, text: () => text, lines: () => text.trim().split('\n').filter(Boolean) };
}

const KEY = 'kiln_Q2xhc3NpY0NvbnZlcnRseUtleUZvclRlc3RzMDEyMzQ1Njc4';
const SIG = 'Tc0hW2yJ3oXb0yqS3o3m1F9Jt0S2vCk7y1r6v2ycmP8';
const SIGNED_URL = `https://kiln.example/api/files/8f7c1d7e-2a7b-4e55-9a57-1b0c4f0c2d11?exp=1796172621&sig=${SIG}`;

test('a line is one JSON object with the level by name, the service, the message and the fields', () => {
  const { log, lines } = capture('info');
  log.child({ jobId: 'j-1', fileId: 'f-1', attempt: 2 }).info('file done', { ms: 12, to: 'webp' });
  log.debug('not written at info');
  expect(lines()).toHaveLength(1);
  expect(JSON.parse(lines()[0]!)).toEqual(
    expect.objectContaining({ level: 'info', svc: 'gateway', msg: 'file done', jobId: 'j-1', fileId: 'f-1', attempt: 2, ms: 12, to: 'webp', time: expect.any(String) }),
  );
  // What the test harness and the benchmark wait for in a process's output.
  expect(lines()[0]).toMatch(/"msg":"file done"/);
});

test('errors keep their message and stack', () => {
  const { log, lines } = capture();
  log.error('unhandled error', { err: new Error('disk on fire') });
  const line = JSON.parse(lines()[0]!);
  expect(line.err).toEqual(expect.objectContaining({ type: 'Error', message: 'disk on fire', stack: expect.stringContaining('disk on fire') }));
});

test('a logged request carrying an API key and a signed URL shows neither', () => {
  const { log, text } = capture();
  log.child({ requestId: 'req-1' }).info('request', {
    method: 'GET',
    url: SIGNED_URL.replace('https://kiln.example', ''),
    headers: { authorization: `Bearer ${KEY}`, 'x-api-key': KEY, cookie: 'kiln_session=abc.def', host: 'kiln.example' },
    downloadUrl: SIGNED_URL,
  });
  // Hidden in free text too: a message, an error's message and stack.
  log.warn(`fetching ${SIGNED_URL} for key ${KEY}`, { err: new Error(`upstream refused ${SIGNED_URL} (Authorization: Bearer ${KEY})`) });
  const out = text();
  expect(out).not.toContain(KEY);
  expect(out).not.toContain(SIG);
  expect(out).not.toContain('kiln_session=abc');
  // What is not secret stays, so the line is still useful.
  expect(out).toContain('"requestId":"req-1"');
  expect(out).toContain('/api/files/8f7c1d7e-2a7b-4e55-9a57-1b0c4f0c2d11?exp=1796172621&sig=[redacted]');
  expect(out).toContain('"host":"kiln.example"');
});

test('webhook secrets, S3 credentials, presigned URLs and URL passwords are masked wherever they are', () => {
  const { log, text } = capture();
  const whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const s3Secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  const presigned = 'https://bucket.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101&X-Amz-Signature=0123abcd';
  log.info('endpoint created', { endpoint: { url: 'https://hooks.example/in', secret: whsec }, note: `signing with ${whsec}` });
  log.info('s3', { S3_SECRET_ACCESS_KEY: s3Secret, credentials: { secretAccessKey: s3Secret, accessKeyId: 'AKIAIOSFODNN7EXAMPLE' }, presigned });
  log.error('database unavailable', { err: new Error('connect postgres://kiln:hunter2hunter2@db.internal:5432/kiln refused') });
  const out = text();
  for (const secret of [whsec, s3Secret, 'AKIAIOSFODNN7EXAMPLE', '0123abcd', 'hunter2hunter2']) expect(out).not.toContain(secret);
  expect(out).toContain('postgres://[redacted]@db.internal:5432/kiln');
  expect(out).toContain('"url":"https://hooks.example/in"');
});

test('configured secret values are masked even where no pattern would find them', () => {
  const secret = 'plain-words-admin-password';
  const { log, text } = capture('debug', 'json', [secret, 'short']);
  log.info(`operator typed ${secret} into the wrong field`, { note: secret, quoted: `"${secret}"` });
  expect(text()).not.toContain(secret);
  expect(text().match(/\[redacted\]/g)?.length).toBe(3);
  // Values too short to be secrets are not treated as such (they would mask ordinary words).
  log.info('short and sweet');
  expect(text()).toContain('short and sweet');
});

test('loggerFor masks the secrets config holds, and follows LOG_LEVEL', () => {
  const config = loadConfig({ ADMIN_PASSWORD: 'correct horse battery staple', METRICS_TOKEN: 'm'.repeat(32), LOG_FORMAT: 'json', LOG_LEVEL: 'warn' });
  let text = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  const log = loggerFor('gateway', config, { destination });
  log.warn('oops', { typed: 'correct horse battery staple', note: `token ${'m'.repeat(32)}` });
  log.info('below LOG_LEVEL');
  expect(text).toContain('"msg":"oops"');
  expect(text).not.toContain('correct horse battery staple');
  expect(text).not.toContain('m'.repeat(32));
  expect(text).not.toContain('below LOG_LEVEL');
});

test('pretty format is one readable line per event, scrubbed the same way', () => {
  const { log, text } = capture('info', 'pretty');
  log.child({ requestId: 'req-2' }).warn('dashboard sign-in failed', { ip: '198.51.100.7', url: SIGNED_URL });
  const out = text();
  expect(out.trim().split('\n')).toHaveLength(1);
  expect(out).toMatch(/WARN.*\[gateway\] dashboard sign-in failed/);
  expect(out).toContain('"requestId":"req-2"');
  expect(out).not.toContain(SIG);
  expect(() => JSON.parse(out)).toThrow();
});

test('LOG_FORMAT and the metrics settings are checked with the rest of the configuration', () => {
  expect(loadConfig({}).LOG_FORMAT).toBe('auto');
  expect(loadConfig({}).CONVERT_METRICS_PORT).toBe(0);
  expect(issues({ LOG_FORMAT: 'xml' })).toEqual([expect.stringMatching(/^LOG_FORMAT: /)]);
  expect(issues({ METRICS_TOKEN: 'short' })).toEqual(['METRICS_TOKEN: must be at least 16 characters (e.g. the output of `openssl rand -hex 32`)']);
  expect(issues({ CONVERT_METRICS_PORT: '9100', COMPRESS_METRICS_PORT: '9100' })).toEqual([
    "COMPRESS_METRICS_PORT: 9100 is also CONVERT_METRICS_PORT; each listener on a host needs its own port (0 turns a worker's metrics off)",
  ]);
  expect(issues({ PORT: '9100', CONVERT_METRICS_PORT: '9100' })).toEqual([
    "CONVERT_METRICS_PORT: 9100 is also PORT; each listener on a host needs its own port (0 turns a worker's metrics off)",
  ]);
});
