/**
 * @kiln/outbound — the one way Kiln makes requests to URLs a client gave it (URL sources, webhooks).
 * SSRF-proof by construction: the URL is parsed by WHATWG URL (http/https only, any case; credentials
 * refused), the host is resolved here and EVERY address checked — loopback, private (RFC 1918, ULA),
 * link-local, CGNAT, multicast, unspecified, broadcast, reserved/documentation, cloud metadata, and the
 * IPv6 forms that embed such an IPv4 address (mapped, compatible, NAT64, 6to4) are refused unless
 * URL_IMPORT_ALLOWED_HOSTS lists the host or address — and the socket is opened to that checked IP
 * (no second lookup, so no DNS rebinding). Each redirect hop is checked again from scratch, at most
 * URL_IMPORT_MAX_REDIRECTS of them; connect, idle and total timeouts and the caller's byte limit bound
 * every exchange. Failures are OutboundErrors of four kinds (errors.ts).
 *
 * Built on undici (custom connector) and ipaddr.js (range tables). Depends on no other Kiln package and
 * reads no environment: settings come from the caller (`outboundSettings(config)`).
 */
export { createOutbound, outboundSettings, SETTING_NAMES } from './outbound.ts';
export type {
  Outbound,
  OutboundSettings,
  OutboundDeps,
  UrlImportConfig,
  CheckedUrl,
  FetchOptions,
  FetchResult,
  RequestOptions,
  RequestResult,
  Resolver,
  ResolvedAddress,
  Connector,
} from './outbound.ts';
export { OutboundError, isOutboundError, type OutboundErrorKind } from './errors.ts';
export { classifyAddress, AllowList } from './address-policy.ts';
export { parseTarget, describeUrl } from './url-policy.ts';
