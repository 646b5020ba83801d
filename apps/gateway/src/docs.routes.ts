/**
 * `GET /openapi.json` (the OpenAPI 3.1 document generated from the zod contracts) and `GET /docs`, a
 * readable reference of it rendered by Swagger UI. The renderer's files are served from the
 * swagger-ui-dist npm package installed with Kiln, never from a CDN, so the page works offline and
 * its Content-Security-Policy allows nothing but this origin.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Router } from 'express';
import { AppError } from '@kiln/contracts';

const require = createRequire(import.meta.url);
const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));

/** Our own start-up script: a file, not inline, so the page's CSP can forbid inline scripts. */
const DOCS_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#reference',
    deepLinking: true,
    // The public validator badge would send the document to a third party: off.
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<noscript>This reference needs JavaScript; the same content is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="reference"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs.js"></script>
</body>
</html>
`;

/** The only files served under /docs/assets: name → type and where the bytes come from. */
const ASSETS: Record<string, { type: string; file?: string; body?: string; bytes?: Buffer }> = {
  'swagger-ui.css': { type: 'text/css', file: 'swagger-ui.css' },
  'swagger-ui-bundle.js': { type: 'text/javascript', file: 'swagger-ui-bundle.js' },
  'favicon-32x32.png': { type: 'image/png', file: 'favicon-32x32.png' },
  'docs.js': { type: 'text/javascript', body: DOCS_JS },
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Swagger UI (React) sets style attributes.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function docsRouter(): Router {
  const r = Router();
  r.get('/openapi.json', async (_req, res) => {
    // Imported by the first request: the document's route schemas and zod-openapi are a few MB that
    // an upload never needs (docs/performance.md, "Gateway memory").
    const { openApiJson } = await import('./openapi/openapi.document.ts');
    res.set('Cache-Control', 'public, max-age=300').type('application/json').send(openApiJson());
  });
  r.get('/docs', (_req, res) => {
    res.set({ 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' }).type('html').send(PAGE);
  });
  r.get('/docs/assets/:file', (req, res) => {
    const asset = Object.hasOwn(ASSETS, req.params.file) ? ASSETS[req.params.file] : undefined;
    if (!asset) throw new AppError('not_found', `No reference asset ${JSON.stringify(String(req.params.file).slice(0, 100))}.`);
    res.set({ 'Cache-Control': 'public, max-age=3600', 'X-Content-Type-Options': 'nosniff' }).type(asset.type);
    if (asset.body !== undefined) {
      res.send(asset.body);
      return;
    }
    // Read once (about 1.5 MB in all): the package's files do not change while Kiln runs.
    if (!asset.bytes) asset.bytes = fs.readFileSync(path.join(SWAGGER_UI_DIR, asset.file!));
    res.send(asset.bytes);
  });
  return r;
}

/** Where the renderer's files come from (for tests and the start-up log). */
export const swaggerUiDir = (): string => SWAGGER_UI_DIR;
