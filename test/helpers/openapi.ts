/**
 * Checks an HTTP answer against Kiln's OpenAPI document: the operation must document the status and
 * the content type, and the body must validate against that response's schema (ajv, JSON Schema
 * 2020-12 as OpenAPI 3.1 uses it, formats checked). Shared by the gateway's http test and the
 * integration tests that produce the answers only real workers can (completed jobs and tasks).
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// biome-ignore lint/suspicious/noExplicitAny: a parsed JSON document, read by path.
export type OpenApiDoc = Record<string, any>;

export interface Answer {
  status: number;
  contentType: string | null | undefined;
  body: unknown;
}

const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => void;

/** A checker bound to one document: `check(method, '/api/jobs/{id}', answer)` throws with the reason. */
export function openApiChecker(doc: OpenApiDoc): (method: string, docPath: string, answer: Answer) => void {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc, 'kiln');
  return (method, docPath, answer) => {
    const where = `${method.toUpperCase()} ${docPath} → ${answer.status}`;
    const op = doc.paths?.[docPath]?.[method];
    if (!op) throw new Error(`${where}: the document has no such operation`);
    const response = op.responses[String(answer.status)];
    if (!response) throw new Error(`${where}: the document does not list this status (it lists ${Object.keys(op.responses).join(', ')})`);
    const type = String(answer.contentType ?? '')
      .split(';')[0]!
      .trim();
    if (!response.content) {
      if (type && answer.body !== undefined && answer.body !== '' && !(typeof answer.body === 'object' && answer.body && Object.keys(answer.body).length === 0)) {
        throw new Error(`${where}: the document lists no body, got ${type}`);
      }
      return;
    }
    if (!response.content[type]) throw new Error(`${where}: the document lists ${Object.keys(response.content).join(', ')}, got ${type || 'no content type'}`);
    const validate = ajv.getSchema(`kiln#/${pointer('paths', docPath, method, 'responses', String(answer.status), 'content', type, 'schema')}`);
    if (!validate) throw new Error(`${where}: no schema to validate with`);
    if (!validate(answer.body))
      throw new Error(`${where}: the body does not match the document: ${JSON.stringify(validate.errors?.slice(0, 5))}\n${JSON.stringify(answer.body).slice(0, 1500)}`);
  };
}
