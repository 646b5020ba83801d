/**
 * Hostile URLs are refused BEFORE any socket is opened: the connect spy must see no call at all. Names
 * resolve through a fake DNS table, so private, metadata, NAT64 or 6to4 answers can be tested without a
 * packet leaving the machine. Redirect cases use a real server on 127.0.0.1, allowed through
 * URL_IMPORT_ALLOWED_HOSTS, which points elsewhere.
 */
import type http from 'node:http';
import { until } from '../../../test/helpers/kiln.ts';
import { isOutboundError } from '../src/index.ts';
import { clients, serve, type TestServer } from './helpers.ts';

const pool = clients();
afterAll(() => pool.closeAll());

const dns = {
  'loopback.test': ['127.0.0.1'],
  'loopback6.test': ['::1'],
  'private.test': ['10.0.0.5'],
  'metadata.test': ['169.254.169.254'],
  'metadata6.test': ['fd00:ec2::254'],
  'mapped.test': ['::ffff:10.0.0.5'],
  'nat64.test': ['64:ff9b::a9fe:a9fe'],
  'sixto4.test': ['2002:a00:5::1'],
  'cgnat.test': ['100.64.0.1'],
  // One public and one private answer: the name is refused as a whole (never "use only the public one").
  'mixed.test': ['93.184.215.14', '10.0.0.5'],
  'mixed6.test': ['2606:4700::1', 'fe80::1'],
};

const hostile: [string, RegExp][] = [
  // IPv4 ranges, written plainly
  ['http://127.0.0.1/', /127\.0\.0\.1 is a loopback address/],
  ['http://127.45.0.9:8080/x', /127\.45\.0\.9 is a loopback address/],
  ['http://10.0.0.5/', /10\.0\.0\.5 is a private address/],
  ['http://172.16.0.1/', /private address/],
  ['http://192.168.1.1/admin', /private address/],
  ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a cloud metadata address/],
  ['http://169.254.1.1/', /link-local address/],
  ['http://100.64.0.1/', /carrier-grade NAT/],
  ['http://0.0.0.0/', /unspecified address/],
  ['http://255.255.255.255/', /broadcast address/],
  ['http://224.0.0.1/', /multicast address/],
  ['http://192.0.2.10/', /reserved address/],
  ['http://198.51.100.1/', /reserved address/],
  ['http://240.0.0.1/', /reserved address/],
  // IPv4 spelled the other ways WHATWG URL accepts: decimal, hex, octal, short, percent-encoded, full-width
  ['http://2130706433/', /127\.0\.0\.1 is a loopback address/],
  ['http://0x7f000001/', /127\.0\.0\.1 is a loopback address/],
  ['http://0x7f.1/', /127\.0\.0\.1 is a loopback address/],
  ['http://0177.0.0.1/', /127\.0\.0\.1 is a loopback address/],
  ['http://127.1/', /127\.0\.0\.1 is a loopback address/],
  ['http://0/', /0\.0\.0\.0 is an unspecified address/],
  ['http://167772165/', /10\.0\.0\.5 is a private address/],
  ['http://0xa9.0xfe.0xa9.0xfe/', /169\.254\.169\.254 is a cloud metadata address/],
  ['http://%31%32%37.0.0.1/', /127\.0\.0\.1 is a loopback address/],
  ['http://１２７.０.０.１/', /127\.0\.0\.1 is a loopback address/],
  // Scheme casing must not matter (the CVE this module exists for)
  ['HTTP://127.0.0.1/', /loopback/],
  ['HtTpS://10.0.0.5/', /private/],
  // IPv6 ranges and the IPv6 forms of IPv4 addresses
  ['http://[::1]/', /::1 is a loopback address/],
  ['http://[::]/', /unspecified address/],
  ['http://[fc00::1]/', /unique local/],
  ['http://[fd12:3456::1]/', /unique local/],
  ['http://[fe80::1]/', /link-local/],
  ['http://[fd00:ec2::254]/', /cloud metadata address/],
  ['http://[ff02::1]/', /multicast/],
  ['http://[::ffff:127.0.0.1]/', /::ffff:7f00:1 is an IPv4-mapped form of a loopback address \(127\.0\.0\.1\)/],
  ['http://[::ffff:7f00:1]/', /IPv4-mapped form of a loopback address \(127\.0\.0\.1\)/],
  ['http://[0:0:0:0:0:ffff:169.254.169.254]/', /IPv4-mapped form of a cloud metadata address \(169\.254\.169\.254\)/],
  ['http://[::ffff:10.0.0.5]/', /IPv4-mapped form of a private address \(10\.0\.0\.5\)/],
  ['http://[::127.0.0.1]/', /IPv4-compatible form of a loopback address \(127\.0\.0\.1\)/],
  ['http://[::ffff:0:7f00:1]/', /IPv4-translated form of a loopback address/],
  ['http://[64:ff9b::127.0.0.1]/', /NAT64 form of a loopback address \(127\.0\.0\.1\)/],
  ['http://[64:ff9b::a00:5]/', /NAT64 form of a private address \(10\.0\.0\.5\)/],
  ['http://[64:ff9b:1::a00:5]/', /local-use NAT64 address/],
  ['http://[2002:7f00:1::]/', /6to4 form of a loopback address \(127\.0\.0\.1\)/],
  ['http://[2002:a9fe:a9fe::1]/', /6to4 form of a cloud metadata address \(169\.254\.169\.254\)/],
  ['http://[2001::1]/', /Teredo/],
  ['http://[2001:db8::1]/', /reserved address/],
  // Names whose DNS answers are not public
  ['http://loopback.test/', /loopback\.test resolves to a loopback address \(127\.0\.0\.1\)/],
  ['http://LOOPBACK.test./', /resolves to a loopback address/],
  ['http://loopback6.test/', /resolves to a loopback address \(::1\)/],
  ['http://private.test/', /private\.test resolves to a private address \(10\.0\.0\.5\)/],
  ['http://metadata.test/latest/meta-data/', /resolves to a cloud metadata address \(169\.254\.169\.254\)/],
  ['http://metadata6.test/', /resolves to a cloud metadata address \(fd00:ec2::254\)/],
  ['http://mapped.test/', /resolves to an IPv4-mapped form of a private address \(::ffff:10\.0\.0\.5, which is 10\.0\.0\.5\)/],
  ['http://nat64.test/', /resolves to a NAT64 form of a cloud metadata address \(64:ff9b::a9fe:a9fe, which is 169\.254\.169\.254\)/],
  ['http://sixto4.test/', /resolves to a 6to4 form of a private address/],
  ['http://cgnat.test/', /carrier-grade NAT/],
  ['http://mixed.test/', /mixed\.test resolves to a private address \(10\.0\.0\.5\)/],
  ['http://mixed6.test/', /mixed6\.test resolves to a link-local address \(fe80::1\)/],
  // Userinfo tricks: the host is what WHATWG URL says it is, and credentials are refused outright
  ['http://example.com@127.0.0.1/', /credentials in URLs are not allowed/],
  ['http://user:secret@example.com/', /credentials in URLs are not allowed/],
  ['http://:secret@example.com/', /credentials in URLs are not allowed/],
  ['http://127.0.0.1#@example.com/', /127\.0\.0\.1 is a loopback address/],
  ['http://127.0.0.1\\@example.com/', /127\.0\.0\.1 is a loopback address/],
  ['http://127.0.0.1:80\\@example.com/', /127\.0\.0\.1 is a loopback address/],
  // Other schemes, any case
  ['ftp://example.com/file', /the scheme ftp is not allowed/],
  ['FILE:///etc/passwd', /the scheme file is not allowed/],
  ['gopher://127.0.0.1:6379/_INFO', /the scheme gopher is not allowed/],
  ['dict://127.0.0.1:11211/stats', /the scheme dict is not allowed/],
  ['javascript:alert(1)', /the scheme javascript is not allowed/],
  ['data:text/plain,hello', /the scheme data is not allowed/],
  ['ws://example.com/', /the scheme ws is not allowed/],
  ['not a url', /"not a url" is not an absolute URL/],
  ['//example.com/relative', /is not an absolute URL/],
  ['http://[::1/', /is not an absolute URL/],
];

describe('a hostile URL is refused before any socket is opened', () => {
  test.each(hostile)('%s', async (url, reason) => {
    const { o, calls } = pool.make({}, dns);
    const fetched = o.fetchToStream(url, { maxBytes: 1024 });
    await expect(fetched).rejects.toMatchObject({ kind: 'url_not_allowed', message: expect.stringMatching(reason) });
    await expect(o.checkUrl(url)).rejects.toMatchObject({ kind: 'url_not_allowed', message: expect.stringMatching(reason) });
    await expect(o.request(url, { body: '{}' })).rejects.toMatchObject({ kind: 'url_not_allowed' });
    expect(calls).toEqual([]);
  });
});

test('address refusals name the setting that lifts them; refusals of the URL itself do not', async () => {
  const { o } = pool.make({}, dns);
  const err = await o.checkUrl('http://private.test/').catch((e: unknown) => e);
  expect(isOutboundError(err) && err.message).toBe(
    'URL not allowed: private.test resolves to a private address (10.0.0.5). Only public addresses are contacted; an operator can allow a host with URL_IMPORT_ALLOWED_HOSTS.',
  );
  expect(err).toMatchObject({ kind: 'url_not_allowed', reason: 'private.test resolves to a private address (10.0.0.5)', retryable: false });
  const scheme = await o.checkUrl('ftp://example.com/').catch((e: unknown) => e);
  expect(isOutboundError(scheme) && scheme.message).toBe('URL not allowed: the scheme ftp is not allowed (only http and https are).');
});

test('localhost, resolved by the system resolver, is refused', async () => {
  const { o, calls } = pool.make({}, {}, { resolve: 'system' });
  await expect(o.fetchToStream('http://localhost/', { maxBytes: 10 })).rejects.toMatchObject({
    kind: 'url_not_allowed',
    message: expect.stringMatching(/localhost resolves to a loopback address \((127\.0\.0\.1|::1)\)/),
  });
  expect(calls).toEqual([]);
});

test('checkUrl accepts a public URL without connecting and reports it normalised', async () => {
  const { o, calls } = pool.make({}, { 'files.example': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'] });
  const checked = await o.checkUrl('HTTPS://Files.Example/a%20b.png?sig=1');
  expect(checked.url.href).toBe('https://files.example/a%20b.png?sig=1');
  expect(checked.addresses).toEqual(['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']);
  expect(calls).toEqual([]);
});

test('a name that does not resolve fails fetch_failed, not url_not_allowed', async () => {
  const { o, calls } = pool.make({}, {});
  await expect(o.checkUrl('http://nowhere.test/')).rejects.toMatchObject({ kind: 'fetch_failed', message: 'Could not resolve nowhere.test (ENOTFOUND).', retryable: false });
  expect(calls).toEqual([]);
});

test('a resolver that never answers is bounded by the connect timeout', async () => {
  const { o, calls } = pool.make({ connectTimeoutMs: 200 }, {}, { resolve: () => new Promise(() => undefined) });
  await expect(o.fetchToStream('http://hang.test/', { maxBytes: 10 })).rejects.toMatchObject({
    kind: 'timeout',
    setting: 'URL_IMPORT_CONNECT_TIMEOUT_SECONDS',
    message: 'Resolving hang.test took longer than 0.2 s; raise URL_IMPORT_CONNECT_TIMEOUT_SECONDS to wait longer.',
  });
  expect(calls).toEqual([]);
});

describe('redirects from an allowed host are checked again, hop by hop', () => {
  let origin: TestServer;
  let other: TestServer;
  const to =
    (location: string): http.RequestListener =>
    (_req, res) => {
      res.writeHead(302, { location });
      res.end();
    };
  const routes: Record<string, (origin: string) => string> = {
    '/to-private': () => 'http://10.0.0.5/secret',
    '/to-metadata': () => 'http://169.254.169.254/latest/meta-data/iam/',
    '/to-mapped': () => 'http://[::ffff:10.0.0.5]/',
    '/to-name': () => 'http://private.test/',
    '/to-other-loopback': () => `http://127.0.0.2:${other.port}/`,
    '/to-ftp': () => 'ftp://example.com/file',
    '/to-file': () => 'file:///etc/passwd',
    '/to-creds': (o) => `${o.replace('://', '://user:pw@')}/ok`,
    '/to-relative-private': () => '//10.0.0.5/x',
  };

  beforeAll(async () => {
    origin = await serve((req, res) => {
      const route = routes[req.url ?? ''];
      if (route) return to(route(origin.origin))(req, res);
      if (req.url === '/loop') return to('/loop')(req, res);
      res.end('ok');
    });
    other = await serve((_req, res) => res.end('must never be reached'), { host: '127.0.0.2', port: origin.port });
  });
  afterAll(async () => {
    await origin.close();
    await other.close();
  });

  test.each([
    ['/to-private', /it redirects to http:\/\/10\.0\.0\.5\/secret, and 10\.0\.0\.5 is a private address/],
    ['/to-metadata', /it redirects to http:\/\/169\.254\.169\.254\/latest\/meta-data\/iam\/, and 169\.254\.169\.254 is a cloud metadata address/],
    ['/to-mapped', /IPv4-mapped form of a private address \(10\.0\.0\.5\)/],
    ['/to-name', /it redirects to http:\/\/private\.test\/, and private\.test resolves to a private address \(10\.0\.0\.5\)/],
    ['/to-other-loopback', /it redirects to http:\/\/127\.0\.0\.2:\d+\/, and 127\.0\.0\.2 is a loopback address/],
    ['/to-ftp', /it redirects to ftp:\/\/example\.com\/file, and the scheme ftp is not allowed/],
    ['/to-file', /it redirects to file:\/\/\/etc\/passwd, and the scheme file is not allowed/],
    ['/to-creds', /credentials in URLs are not allowed/],
    ['/to-relative-private', /10\.0\.0\.5 is a private address/],
  ])('%s is refused', async (route, reason) => {
    const { o, calls } = pool.make({ allowedHosts: ['127.0.0.1'] }, dns);
    await expect(o.fetchToStream(`${origin.origin}${route}`, { maxBytes: 1024 })).rejects.toMatchObject({ kind: 'url_not_allowed', message: expect.stringMatching(reason) });
    // Only the allowed first hop was ever connected to.
    expect(calls).toEqual(['127.0.0.1']);
    expect(other.sockets).toHaveLength(0);
  });

  test('a redirect loop stops after URL_IMPORT_MAX_REDIRECTS with limit_exceeded', async () => {
    const { o } = pool.make({ allowedHosts: ['127.0.0.1'], maxRedirects: 3 }, dns);
    const before = origin.requests.length;
    await expect(o.fetchToStream(`${origin.origin}/loop`, { maxBytes: 1024 })).rejects.toMatchObject({
      kind: 'limit_exceeded',
      setting: 'URL_IMPORT_MAX_REDIRECTS',
      message: expect.stringMatching(/\/loop redirected more than 3 times; raise URL_IMPORT_MAX_REDIRECTS to follow more/),
    });
    // The first request and three redirects followed: four requests, not one more.
    expect(origin.requests.length - before).toBe(4);
  });

  test('webhook-style requests do not follow redirects unless asked, and then check every hop too', async () => {
    const { o, calls } = pool.make({ allowedHosts: ['127.0.0.1'] }, dns);
    const answer = await o.request(`${origin.origin}/to-private`, { body: '{}', headers: { 'content-type': 'application/json' } });
    expect(answer.status).toBe(302);
    await expect(o.request(`${origin.origin}/to-private`, { body: '{}', followRedirects: true })).rejects.toMatchObject({
      kind: 'url_not_allowed',
      message: expect.stringMatching(/10\.0\.0\.5 is a private address/),
    });
    expect(calls.every((c) => c === '127.0.0.1')).toBe(true);
  });

  test('the server sees every refused exchange end (no socket left open by a refusal)', async () => {
    const { o } = pool.make({ allowedHosts: ['127.0.0.1'] }, dns);
    await o.fetchToStream(`${origin.origin}/to-private`, { maxBytes: 1024 }).catch(() => undefined);
    await o.close();
    await until('every connection to the origin to close', async () => origin.allClosed(), 10_000);
  });
});
