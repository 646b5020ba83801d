/**
 * Which IP addresses Kiln may connect to. The decision is made on the parsed address (ipaddr.js's range
 * tables, the ones Express's proxy-addr relies on), never on how a URL spells it, and IPv6 forms that
 * embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by the address they embed.
 */
import ipaddr from 'ipaddr.js';
import net from 'node:net';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

/** Why an address is refused, as the noun phrase a message uses ("a private address"). */
const V4_REFUSED: Record<string, string> = {
  unspecified: 'an unspecified address',
  broadcast: 'the broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a carrier-grade NAT (shared) address',
  private: 'a private address',
  reserved: 'a reserved address',
  as112: 'a reserved address',
  amt: 'a reserved address',
};
const V6_REFUSED: Record<string, string> = {
  unspecified: 'an unspecified address',
  linkLocal: 'a link-local address',
  multicast: 'a multicast address',
  loopback: 'a loopback address',
  uniqueLocal: 'a private (unique local) address',
  deprecatedSiteLocal: 'a private (site-local) address',
  teredo: 'a Teredo tunnel address',
  discard: 'a reserved address',
  benchmarking: 'a reserved address',
  amt: 'a reserved address',
  as112v6: 'a reserved address',
  deprecatedOrchid: 'a reserved address',
  orchid2: 'a reserved address',
  droneRemoteIdProtocolEntityTags: 'a reserved address',
  segmentRouting: 'a reserved address',
  reserved: 'a reserved address',
};

/** Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, AWS's IPv6 one): named in their own words. */
const METADATA = new Set(['169.254.169.254', 'fd00:ec2::254']);

/** Global unicast IPv6 (everything IANA has allocated for the public internet) lies in 2000::/3. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
const LOCAL_NAT64 = ipaddr.parseCIDR('64:ff9b:1::/48');

/**
 * `what` is the reason phrase for a refusal ("a private address"); `embeds` the IPv4 address an IPv6 form
 * stands for, when that is what was judged.
 */
export type AddressVerdict = { allowed: true } | { allowed: false; what: string; embeds?: string };

/** Whether `ip` (a literal, v4 or v6) is a public unicast address. */
export function classifyAddress(ip: string): AddressVerdict {
  const addr = parseIp(ip);
  if (!addr) return { allowed: false, what: 'not an IP address' };
  if (addr.kind() === 'ipv4') return classifyV4(addr as ipaddr.IPv4);
  const v6 = addr as ipaddr.IPv6;
  if (METADATA.has(v6.toString())) return { allowed: false, what: 'a cloud metadata address' };
  const embedded = embeddedV4(v6);
  if (embedded) {
    const inner = classifyV4(embedded.v4);
    return inner.allowed ? inner : { allowed: false, what: `${embedded.form} form of ${inner.what}`, embeds: embedded.v4.toString() };
  }
  if (v6.match(LOCAL_NAT64)) return { allowed: false, what: 'a local-use NAT64 address' };
  const range = v6.range();
  const refused = V6_REFUSED[range];
  if (refused) return { allowed: false, what: refused };
  if (range !== 'unicast' || !v6.match(GLOBAL_UNICAST_V6)) return { allowed: false, what: 'a reserved address' };
  return { allowed: true };
}

function classifyV4(addr: ipaddr.IPv4): AddressVerdict {
  if (METADATA.has(addr.toString())) return { allowed: false, what: 'a cloud metadata address' };
  const range = addr.range();
  if (range === 'unicast') return { allowed: true };
  return { allowed: false, what: V4_REFUSED[range] ?? 'a reserved address' };
}

/**
 * The IPv4 address an IPv6 address stands for, where the form is a way of reaching IPv4: a connection
 * to ::ffff:127.0.0.1 is a connection to 127.0.0.1, and a NAT64 gateway turns 64:ff9b::a00:5 into 10.0.0.5.
 */
function embeddedV4(v6: ipaddr.IPv6): { v4: ipaddr.IPv4; form: string } | undefined {
  const p = v6.parts;
  const low32 = () => new ipaddr.IPv4([p[6]! >> 8, p[6]! & 0xff, p[7]! >> 8, p[7]! & 0xff]);
  const range = v6.range();
  if (range === 'ipv4Mapped') return { v4: v6.toIPv4Address(), form: 'an IPv4-mapped' };
  if (range === 'rfc6145') return { v4: low32(), form: 'an IPv4-translated' };
  if (range === 'rfc6052' && !v6.match(LOCAL_NAT64)) return { v4: low32(), form: 'a NAT64' };
  if (range === '6to4') return { v4: new ipaddr.IPv4([p[1]! >> 8, p[1]! & 0xff, p[2]! >> 8, p[2]! & 0xff]), form: 'a 6to4' };
  // ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291); :: and ::1 have their own ranges.
  if (p.slice(0, 6).every((x) => x === 0) && range !== 'unspecified' && range !== 'loopback') return { v4: low32(), form: 'an IPv4-compatible' };
  return undefined;
}

/** The reason sentence fragment for a refused address: "a private address (10.0.0.5)". */
export function describeRefusal(ip: string, v: { what: string; embeds?: string }): string {
  return `${v.what} (${ip}${v.embeds ? `, which is ${v.embeds}` : ''})`;
}

/** Strict literal parsing: only what `net.isIP` accepts (no octal/hex/short forms — WHATWG URL normalises those first). */
function parseIp(ip: string): Addr | undefined {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  if (!net.isIP(bare)) return undefined;
  return ipaddr.parse(bare);
}

/**
 * URL_IMPORT_ALLOWED_HOSTS, parsed: exact hostnames, `*.suffix` wildcards (subdomains only), IPs and CIDRs
 * (v4 and v6). A match lifts the address refusal for that target only; scheme and credential rules stay.
 */
export class AllowList {
  private readonly names = new Set<string>();
  private readonly suffixes: string[] = [];
  private readonly cidrs: [Addr, number][] = [];

  constructor(entries: readonly string[], setting = 'URL_IMPORT_ALLOWED_HOSTS') {
    for (const raw of entries) {
      const entry = raw.trim().toLowerCase();
      if (!entry) continue;
      const cidr = parseCidr(entry);
      if (cidr) this.cidrs.push(cidr);
      else if (entry.startsWith('*.') && isHostname(entry.slice(2))) this.suffixes.push(entry.slice(1));
      else if (isHostname(entry)) this.names.add(stripDot(entry));
      else throw new Error(`${setting}: "${raw}" is neither a hostname, an IP address nor a CIDR range (e.g. files.intranet, 10.0.0.5, 10.1.0.0/16, fd00::/8).`);
    }
  }

  get size(): number {
    return this.names.size + this.suffixes.length + this.cidrs.length;
  }

  hasHost(hostname: string): boolean {
    const h = stripDot(hostname.toLowerCase());
    return this.names.has(h) || this.suffixes.some((s) => h.endsWith(s));
  }

  hasAddress(ip: string): boolean {
    const addr = parseIp(ip);
    if (!addr) return false;
    // ::ffff:127.0.0.1 is 127.0.0.1 on the wire, so an IPv4 entry covers its mapped form too.
    const forms: Addr[] = [addr];
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) forms.push((addr as ipaddr.IPv6).toIPv4Address());
    return forms.some((a) => this.cidrs.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits)));
  }
}

function parseCidr(entry: string): [Addr, number] | undefined {
  const bare = entry.startsWith('[') && entry.endsWith(']') ? entry.slice(1, -1) : entry;
  if (net.isIP(bare)) {
    const a = ipaddr.parse(bare);
    return [a, a.kind() === 'ipv4' ? 32 : 128];
  }
  const slash = bare.indexOf('/');
  if (slash < 0 || !net.isIP(bare.slice(0, slash)) || !/^\d{1,3}$/.test(bare.slice(slash + 1))) return undefined;
  try {
    return ipaddr.parseCIDR(bare);
  } catch {
    return undefined;
  }
}

const stripDot = (h: string) => (h.endsWith('.') ? h.slice(0, -1) : h);
const isHostname = (h: string) => /^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/.test(h);
