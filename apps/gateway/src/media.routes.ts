/**
 * Convertly's media tools: `POST /api/media/<tool>` runs one tool on one input (image-to-pdf: several)
 * given as a `file` part or a `sourceUrl`, with the tool's options as plain form fields; `GET
 * /api/media` lists the tools, their options as JSON Schema and the inputs they take.
 *
 * A tool run is a normal job (visible in GET /api/jobs, with its `tool`): it goes through the same
 * submission steps (admission, the key's allowed formats, one transaction with the queue message)
 * and the same workers as a conversion. With `async=true` (or Convertly's `background=true`) the
 * answer is `{jobId, status, tool}` at once; otherwise the request waits like POST /api/convert and
 * answers in its shape, plus `tool` (and inspect's `metadata`).
 *
 * Input parts: `file` (Convertly's name) or `files` (Kiln's job field); a client that sends the same
 * file under both — Convertly's own MCP server does — gets the `file` one used. watermark also takes
 * an image part `watermarkFile` (alias `watermark`).
 */
import crypto from 'node:crypto';
import { Router, type Request } from 'express';
import {
  AppError,
  FILE_QUEUES,
  isToolName,
  parseToolOptions,
  readFileResult,
  toolCatalog,
  toolInputRefusal,
  toolInputsInWords,
  TOOLS,
  workClassOfTool,
  type ToolName,
} from '@kiln/contracts';
import { getJob, type ApiKeyRow, type ExtraSource } from '@kiln/db';
import { keys } from '@kiln/storage';
import type { GatewayDeps } from './deps.ts';
import { apiKeyOf } from './auth.ts';
import { admitSubmission, checkReadable, submitJob, type SubmitFile, type Submitted } from './jobs.service.ts';
import { jobWebhookUrlOf } from './webhooks.service.ts';
import { idempotencyKeyOf } from './multipart-intake.ts';
import { answerSync, submitAndWait } from './sync.routes.ts';
import { receiveUpload, uploadLimitsFor, type FileFields, type UploadedFile } from './upload.ts';
import { urlSourcesOf, type UrlSource } from './url-sources.ts';

const INPUT_FIELD = /^(file|files(\[\d+\]|\.items(\[\d+\])?|\[\])?)$/;
const OVERLAY_FIELD = /^(watermarkFile|watermark)$/;

function fileFieldsFor(tool: ToolName): FileFields {
  const overlay = TOOLS[tool].overlay;
  return {
    accepts: (f) => INPUT_FIELD.test(f) || (!!overlay && OVERLAY_FIELD.test(f)),
    describe: overlay ? 'the "file" field (and the watermark image in "watermarkFile")' : 'the "file" field',
  };
}

/** The public catalog: no key needed, like GET /api/formats. */
export function mediaCatalogRouter(): Router {
  const r = Router();
  const body = { tools: toolCatalog() };
  r.get('/media', (_req, res) => {
    res.json(body);
  });
  return r;
}

export function mediaRouter(deps: GatewayDeps): Router {
  const r = Router();
  r.post('/media/:tool', async (req, res) => {
    const name = String(req.params.tool ?? '');
    if (!isToolName(name)) throw new AppError('not_found', `No media tool ${JSON.stringify(name)}; GET /api/media lists them.`, { detail: { tool: name } });
    const spec = TOOLS[name];
    if (spec.unavailable) {
      // Nothing is read or stored: the body is dropped as it arrives.
      req.resume();
      throw new AppError('not_implemented', spec.unavailable, { detail: { tool: name } });
    }
    const key = apiKeyOf(req);
    const { created, final, notified } = await submitAndWait(
      deps,
      res,
      (listen) => submitTool(deps, req, res, key, name, listen),
      (c) => !c.background,
    );
    if (created.background) {
      const job = created.created ? undefined : await getJob(deps.pool, created.jobId, key.id);
      if (!created.created) res.set('Idempotent-Replayed', 'true');
      res.json({ jobId: created.jobId, status: job?.status ?? 'pending', tool: name });
      return;
    }
    await answerSync(
      deps,
      req,
      res,
      key,
      created.jobId,
      final,
      created.save,
      (rows) => {
        const r = rows[0] ? readFileResult(rows[0].result) : {};
        return { tool: name, ...(r.metadata ? { metadata: r.metadata } : {}), ...(r.storyboard ? { storyboard: r.storyboard } : {}) };
      },
      notified,
    );
  });
  return r;
}

/** `async=true` or Convertly's `background=true`: answer with the job at once instead of waiting. */
function parseBackground(fields: Record<string, unknown>): boolean {
  let on = false;
  for (const name of ['async', 'background']) {
    const raw = Array.isArray(fields[name]) ? (fields[name] as unknown[]).at(-1) : fields[name];
    if (raw === undefined || raw === '' || raw === 'false') continue;
    if (raw !== 'true')
      throw new AppError('invalid_field', `${name} must be "true" or "false"; got ${JSON.stringify(raw)}.`, { detail: { field: name, accepted: ['true', 'false'] } });
    on = true;
  }
  return on;
}

interface ToolSubmission extends Submitted {
  /** Whether results stay stored (saveToStorage=true), for the sync answer. */
  save: boolean;
  /** async=true / background=true: answered at once with the job. */
  background: boolean;
}

/**
 * Reads the parts and fields, refuses what can be refused now (bad options, a missing or extra
 * input, a type the tool does not take), and submits one job of one file; the stored parts are
 * deleted again unless the job owns them.
 */
async function submitTool(
  deps: GatewayDeps,
  req: Request,
  res: Parameters<typeof submitAndWait>[1],
  key: ApiKeyRow,
  tool: ToolName,
  listen: (jobId: string) => void,
): Promise<ToolSubmission> {
  const spec = TOOLS[tool];
  // A tool that takes one class of input (gif: video) is refused for a full class before its upload is read.
  const toolClass = workClassOfTool(tool);
  const admission = await admitSubmission(deps, key, idempotencyKeyOf(req), { queue: toolClass ? FILE_QUEUES.convert[toolClass] : undefined });
  const jobId = crypto.randomUUID();
  const limits = uploadLimitsFor(deps.config, key);
  const parts = await receiveUpload(deps.store, req, res, jobId, limits, fileFieldsFor(tool));
  const stored = parts.map((p) => p.key);
  try {
    const fields = (req.body ?? {}) as Record<string, unknown>;
    const background = parseBackground(fields);
    const save = parseSave(fields);
    const options = parseToolOptions(tool, fields);
    const urls = await urlSourcesOf(deps, fields);
    const webhookUrl = await jobWebhookUrlOf(deps, key.id, fields.webhookUrl);
    const overlays = parts.filter((p) => OVERLAY_FIELD.test(p.fieldname));
    const inputs = chooseInputs(
      tool,
      parts.filter((p) => INPUT_FIELD.test(p.fieldname)),
      urls,
    );
    if (overlays.length > 1) throw new AppError('invalid_field', 'Send one watermark image (watermarkFile).', { detail: { field: 'watermarkFile' } });
    if (inputs.length > limits.maxFiles) {
      throw new AppError('too_many_files', `Too many files: ${inputs.length}, at most ${limits.maxFiles} per request.`, {
        detail: { limit: limits.maxFilesByKey ? 'maxFilesPerJob' : 'MAX_FILES_PER_JOB', maxFiles: limits.maxFiles },
      });
    }
    // Uploaded inputs are checked now; a URL source's type is known only once a worker has fetched it.
    for (const [i, input] of inputs.entries()) {
      if ('url' in input) continue;
      const where = inputs.length > 1 ? `file ${i + 1} ("${input.filename}")` : `file ("${input.filename}")`;
      checkReadable({ index: i, size: input.size, kind: input.kind }, where, 'file');
      const refusal = toolInputRefusal(tool, where, input.kind!);
      if (refusal) throw new AppError('unsupported_format', refusal, { detail: { field: 'file', tool, input: input.kind, accepts: spec.inputs } });
    }
    const overlay = overlays[0];
    if (overlay) {
      checkReadable({ index: 0, size: overlay.size, kind: overlay.kind }, `watermarkFile ("${overlay.filename}")`, 'watermarkFile');
      if (overlay.kind && !['jpg', 'png', 'webp', 'avif', 'tiff', 'gif', 'heic', 'svg'].includes(overlay.kind)) {
        throw new AppError('unsupported_format', `watermarkFile ("${overlay.filename}") is ${overlay.kind}; the watermark must be an image.`, {
          detail: { field: 'watermarkFile' },
        });
      }
    }
    if (tool === 'watermark' && !overlay && !(options as { text?: string }).text) {
      throw new AppError('invalid_field', 'watermark needs text=… or an image part watermarkFile to draw.', { detail: { field: 'text', tool } });
    }
    // Parts sent twice (file and files) that are not used go now.
    const used = new Set([...inputs.filter((i): i is UploadedFile => !('url' in i)).map((i) => i.key), ...(overlay ? [overlay.key] : [])]);
    const unused = stored.filter((k) => !used.has(k));
    if (unused.length) await deps.store.delete(unused);

    const [first, ...rest] = inputs.map((i) => asSource(jobId, i));
    const extraSources: ExtraSource[] = [
      ...rest.map((s) => ({ key: s.sourceKey, filename: s.filename, role: 'page', ...(s.sourceUrl ? { url: s.sourceUrl } : { kind: s.kind, size: s.size }) })),
      ...(overlay ? [{ key: overlay.key, filename: overlay.filename, role: 'overlay', kind: overlay.kind ?? null, size: overlay.size }] : []),
    ];
    const file: SubmitFile = {
      ...first!,
      options,
      ...(first!.sourceUrl ? { sourceMaxBytes: limits.maxFileBytes } : {}),
      ...(extraSources.length ? { extraSources } : {}),
    };
    const submitted = await submitJob(deps, admission, {
      jobId,
      jobType: 'convert',
      createArchive: false,
      tool,
      files: [file],
      ...(webhookUrl ? { webhookUrl } : {}),
      // An async request does not wait, so nothing listens for its job.
      ...(background ? {} : { beforeVisible: listen }),
    });
    // jobId is new and this request's alone: when no job took it, its whole folder goes (not only
    // the parts, which would leave an empty jobs/<id>/src behind).
    if (!submitted.created) await deps.store.delete([keys.job(jobId)]);
    return { ...submitted, save, background };
  } catch (err) {
    await deps.store.delete([keys.job(jobId)]).catch(() => undefined);
    throw err;
  }
}

type Input = UploadedFile | (UrlSource & { url: string });

/**
 * The inputs of one run, in order: one for most tools — the `file` part, else the one `files` part,
 * else the URL — and for image-to-pdf every part in upload order, then the URLs.
 */
function chooseInputs(tool: ToolName, parts: UploadedFile[], urls: UrlSource[]): Input[] {
  if (TOOLS[tool].multiple) {
    const all: Input[] = [...parts, ...urls];
    if (all.length === 0)
      throw new AppError('invalid_field', `${tool} needs at least one image: send file parts (file or files) or sourceUrl.`, { detail: { field: 'file', tool } });
    return all;
  }
  const named = parts.filter((p) => p.fieldname === 'file');
  const chosen = named.length ? named : parts;
  if (chosen.length > 1) {
    throw new AppError('invalid_field', `${tool} takes one input file; ${chosen.length} were sent in "${chosen[0]!.fieldname}".`, { detail: { field: 'file', tool } });
  }
  if (chosen.length && urls.length)
    throw new AppError('invalid_field', `Send the input either as a file part or as sourceUrl, not both.`, { detail: { field: 'sourceUrl', tool } });
  if (urls.length > 1) throw new AppError('invalid_field', `${tool} takes one input; ${urls.length} URLs were sent.`, { detail: { field: 'sourceUrl', tool } });
  const input = chosen[0] ?? urls[0];
  if (!input)
    throw new AppError('invalid_field', `Send the input as a file part named "file", or its URL in sourceUrl (${tool} takes ${toolInputsInWords(tool)}).`, {
      detail: { field: 'file', tool },
    });
  return [input];
}

function asSource(jobId: string, input: Input): Omit<SubmitFile, 'options'> {
  if ('url' in input) {
    const fileId = crypto.randomUUID();
    return { fileId, sourceKey: keys.source(jobId, fileId), filename: input.filename, kind: null, size: null, sourceUrl: input.url };
  }
  return { fileId: input.fileId, sourceKey: input.key, filename: input.filename, kind: input.kind ?? null, size: input.size };
}

function parseSave(fields: Record<string, unknown>): boolean {
  const raw = Array.isArray(fields.saveToStorage) ? (fields.saveToStorage as unknown[]).at(-1) : fields.saveToStorage;
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new AppError('invalid_field', `saveToStorage must be "true" or "false"; got ${JSON.stringify(raw)}.`, { detail: { field: 'saveToStorage', accepted: ['true', 'false'] } });
}
