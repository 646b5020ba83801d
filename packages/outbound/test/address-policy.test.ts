import { AllowList, classifyAddress } from '../src/address-policy.ts';

const refused = (what: RegExp, embeds?: string) => ({ allowed: false, what: expect.stringMatching(what), ...(embeds ? { embeds } : {}) });

test.each([
  ['127.0.0.1', refused(/^a loopback address$/)],
  ['127.255.255.254', refused(/loopback/)],
  ['10.0.0.5', refused(/^a private address$/)],
  ['172.16.0.1', refused(/private/)],
  ['172.31.255.255', refused(/private/)],
  ['192.168.1.1', refused(/private/)],
  ['169.254.169.254', refused(/^a cloud metadata address$/)],
  ['169.254.1.1', refused(/^a link-local address$/)],
  ['100.64.0.1', refused(/carrier-grade NAT/)],
  ['100.127.255.255', refused(/carrier-grade NAT/)],
  ['0.0.0.0', refused(/unspecified/)],
  ['0.1.2.3', refused(/unspecified/)],
  ['255.255.255.255', refused(/broadcast/)],
  ['224.0.0.1', refused(/multicast/)],
  ['239.255.255.250', refused(/multicast/)],
  ['192.0.0.192', refused(/reserved/)],
  ['192.0.2.1', refused(/reserved/)],
  ['198.18.0.1', refused(/reserved/)],
  ['198.51.100.7', refused(/reserved/)],
  ['203.0.113.9', refused(/reserved/)],
  ['240.0.0.1', refused(/reserved/)],
  ['::1', refused(/^a loopback address$/)],
  ['::', refused(/unspecified/)],
  ['fc00::1', refused(/unique local/)],
  ['fd12:3456:789a::1', refused(/unique local/)],
  ['fd00:ec2::254', refused(/^a cloud metadata address$/)],
  ['fe80::1', refused(/link-local/)],
  ['fec0::1', refused(/site-local/)],
  ['ff02::1', refused(/multicast/)],
  ['::ffff:127.0.0.1', refused(/^an IPv4-mapped form of a loopback address$/, '127.0.0.1')],
  ['::ffff:7f00:1', refused(/IPv4-mapped form of a loopback/, '127.0.0.1')],
  ['::ffff:10.0.0.5', refused(/IPv4-mapped form of a private/, '10.0.0.5')],
  ['::ffff:169.254.169.254', refused(/IPv4-mapped form of a cloud metadata/, '169.254.169.254')],
  ['::7f00:1', refused(/^an IPv4-compatible form of a loopback address$/, '127.0.0.1')],
  ['::a00:5', refused(/IPv4-compatible form of a private/, '10.0.0.5')],
  ['::ffff:0:7f00:1', refused(/IPv4-translated form of a loopback/, '127.0.0.1')],
  ['64:ff9b::7f00:1', refused(/^a NAT64 form of a loopback address$/, '127.0.0.1')],
  ['64:ff9b::a00:5', refused(/NAT64 form of a private/, '10.0.0.5')],
  ['64:ff9b::a9fe:a9fe', refused(/NAT64 form of a cloud metadata/, '169.254.169.254')],
  ['64:ff9b:1::a00:5', refused(/local-use NAT64/)],
  ['2002:7f00:1::', refused(/^a 6to4 form of a loopback address$/, '127.0.0.1')],
  ['2002:a00:5::1', refused(/6to4 form of a private/, '10.0.0.5')],
  ['2002:a9fe:a9fe::', refused(/6to4 form of a cloud metadata/, '169.254.169.254')],
  ['2001::1', refused(/Teredo/)],
  ['2001:db8::1', refused(/reserved/)],
  ['100::1', refused(/reserved/)],
  ['4000::1', refused(/reserved/)],
  ['not-an-ip', refused(/not an IP address/)],
  ['0177.0.0.1', refused(/not an IP address/)],
])('%s is refused', (ip, verdict) => {
  expect(classifyAddress(ip)).toEqual(verdict);
});

test.each([
  '93.184.215.14',
  '8.8.8.8',
  '1.1.1.1',
  '172.32.0.1',
  '100.128.0.1',
  '169.253.0.1',
  '2606:4700:4700::1111',
  '2a00:1450:4001::200e',
  // Forms that embed a public IPv4 address stand for it (an IPv6-only host behind DNS64 reaches everything this way).
  '::ffff:8.8.8.8',
  '64:ff9b::808:808',
  '2002:808:808::1',
])('%s is a public address', (ip) => {
  expect(classifyAddress(ip)).toEqual({ allowed: true });
});

describe('URL_IMPORT_ALLOWED_HOSTS', () => {
  const allow = new AllowList(['files.intranet', '*.corp.example', '127.0.0.1', '10.1.0.0/16', 'fd00::/8', '[::1]', ' Mixed.Case.Test. ']);

  test('hostnames match exactly, case and trailing dot aside; wildcards match subdomains only', () => {
    expect(allow.hasHost('files.intranet')).toBe(true);
    expect(allow.hasHost('FILES.intranet.')).toBe(true);
    expect(allow.hasHost('mixed.case.test')).toBe(true);
    expect(allow.hasHost('evil-files.intranet')).toBe(false);
    expect(allow.hasHost('files.intranet.evil.test')).toBe(false);
    expect(allow.hasHost('a.corp.example')).toBe(true);
    expect(allow.hasHost('a.b.corp.example')).toBe(true);
    expect(allow.hasHost('corp.example')).toBe(false);
    expect(allow.hasHost('xcorp.example')).toBe(false);
  });

  test('IPs and CIDRs match addresses, v4 and v6, and an IPv4 entry covers its mapped form', () => {
    expect(allow.hasAddress('127.0.0.1')).toBe(true);
    expect(allow.hasAddress('::ffff:127.0.0.1')).toBe(true);
    expect(allow.hasAddress('127.0.0.2')).toBe(false);
    expect(allow.hasAddress('10.1.200.3')).toBe(true);
    expect(allow.hasAddress('10.2.0.1')).toBe(false);
    expect(allow.hasAddress('fd12::1')).toBe(true);
    expect(allow.hasAddress('fc00::1')).toBe(false);
    expect(allow.hasAddress('::1')).toBe(true);
    expect(allow.hasAddress('files.intranet')).toBe(false);
  });

  test('an entry that is neither a hostname, an IP nor a CIDR is refused with the setting named', () => {
    expect(() => new AllowList(['10.0.0.0/33'])).toThrow(/URL_IMPORT_ALLOWED_HOSTS: "10.0.0.0\/33" is neither a hostname/);
    expect(() => new AllowList(['http://files.intranet/'])).toThrow(/URL_IMPORT_ALLOWED_HOSTS/);
    expect(() => new AllowList(['*'])).toThrow(/URL_IMPORT_ALLOWED_HOSTS/);
    expect(new AllowList([]).size).toBe(0);
  });
});
