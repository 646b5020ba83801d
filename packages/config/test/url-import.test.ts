import { loadConfig } from '../src/index.ts';

test('URL import is on by default, public addresses only, with bounded timeouts and 5 redirects', () => {
  const cfg = loadConfig({});
  expect(cfg).toMatchObject({
    URL_IMPORT: true,
    URL_IMPORT_ALLOWED_HOSTS: [],
    URL_IMPORT_CONNECT_TIMEOUT_SECONDS: 10,
    URL_IMPORT_IDLE_TIMEOUT_SECONDS: 30,
    URL_IMPORT_TIMEOUT_SECONDS: 300,
    URL_IMPORT_MAX_REDIRECTS: 5,
  });
});

test('URL_IMPORT=false turns it off (a string flag, never a coerced boolean)', () => {
  expect(loadConfig({ URL_IMPORT: 'false' }).URL_IMPORT).toBe(false);
  expect(loadConfig({ URL_IMPORT: '0' }).URL_IMPORT).toBe(false);
  expect(() => loadConfig({ URL_IMPORT: 'no' })).toThrow(/URL_IMPORT/);
});

test('URL_IMPORT_ALLOWED_HOSTS takes hostnames, wildcards, IPs and CIDRs, v4 and v6', () => {
  const cfg = loadConfig({ URL_IMPORT_ALLOWED_HOSTS: ' files.intranet, *.corp.example ,127.0.0.1,10.1.0.0/16, fd00::/8, [::1],' });
  expect(cfg.URL_IMPORT_ALLOWED_HOSTS).toEqual(['files.intranet', '*.corp.example', '127.0.0.1', '10.1.0.0/16', 'fd00::/8', '[::1]']);
});

test('every bad URL_IMPORT_ALLOWED_HOSTS entry is reported with the setting named', () => {
  let message = '';
  try {
    loadConfig({ URL_IMPORT_ALLOWED_HOSTS: 'http://files.intranet/,10.0.0.0/33,ok.example', URL_IMPORT_MAX_REDIRECTS: '-1' });
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message).toMatch(/URL_IMPORT_ALLOWED_HOSTS: "http:\/\/files\.intranet\/" is neither a hostname, an IP address nor a CIDR range/);
  expect(message).toMatch(/URL_IMPORT_ALLOWED_HOSTS: "10\.0\.0\.0\/33" is neither/);
  expect(message).not.toMatch(/ok\.example/);
  expect(message).toMatch(/URL_IMPORT_MAX_REDIRECTS/);
});
