/**
 * `node:http` for the gateway's modules. Not `import http from 'node:http'`: an ES import of node:http
 * reads all its exports, and its lazy WebSocket/CloseEvent/MessageEvent load Node's bundled undici,
 * about 10 MB of a process's memory for nothing (docs/performance.md, "Gateway memory"). require()
 * reads only what is used. (@kiln/metrics' serve.ts, a package of its own, does the same.)
 */
import { createRequire } from 'node:module';

export const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');
