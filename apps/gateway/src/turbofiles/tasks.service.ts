/**
 * TurboFiles tasks: a task is a job of one file seen through this dialect. POST /v1/tasks checks the
 * request against the file and the format registry, then submits through the job service's own steps
 * (admission, allowed formats, one transaction with the job, its file row and its queue message), the
 * task row written in that same transaction. Workers, retention and limits never know the difference.
 */
import crypto from 'node:crypto';
import type { Request } from 'express';
import {
  AppError,
  TASK_STATUSES,
  fileOptionsFor,
  isAppError,
  isUuid,
  readFileResult,
  resizeOptionsFor,
  type CreateTaskDocument,
  type Resource,
  type TaskAttributes,
} from '@kiln/contracts';
import { INPUT_INFO, inputKindOf, outputFormatOf, sameContent, type InputKind } from '@kiln/formats';
import { getTask, getTurbofilesFile, getTurbofilesFilesById, insertTask, type ApiKeyRow, type TaskRow, type TurbofilesFileRow } from '@kiln/db';
import type { GatewayDeps } from '../deps.ts';
import { fileErrorMessage, publicBaseUrl } from '../job-responses.ts';
import { admitSubmission, checkPair, submitJob } from '../jobs.service.ts';
import { jobWebhookUrlOf } from '../webhooks.service.ts';
import { declaredFilename, fileResource, fileStatus, outputResource, settleIfUploadedDirectly } from './files.service.ts';

const OUTPUT_POINTER = '/data/attributes/format/output';
const INPUT_POINTER = '/data/attributes/format/input';

/** Thrown in the job's transaction when the input stopped being usable since it was checked. */
class InputGone extends Error {}

/** An error the job service raised, given the member of this request it is about. */
function pointAt(err: unknown, pointer: string): unknown {
  if (!isAppError(err) || err.detail?.pointer) return err;
  return new AppError(err.code, err.message, { detail: { ...err.detail, pointer }, headers: err.headers, cause: err });
}

export interface CreatedTask {
  task: TaskRow;
  /** False for a replay (the same Idempotency-Key): the earlier task, nothing new. */
  created: boolean;
}

/**
 * POST /v1/tasks. The order of checks is the order of the document: the formats named, the input
 * file (yours, and READY), what it really is against format.input, the pair against the registry,
 * then the key's limits. Nothing is queued unless every check passes.
 */
export async function createTask(deps: GatewayDeps, key: ApiKeyRow, doc: CreateTaskDocument, idempotencyKey: string | undefined): Promise<CreatedTask> {
  const { attributes } = doc.data;
  const rel = doc.data.relationships ?? doc.data.relationship;
  const relPointer = doc.data.relationships ? '/data/relationships' : '/data/relationship';
  if (!rel) {
    throw new AppError('invalid_field', '/data/relationships is required: name the input file as relationships.input.data.id (a file from POST /v1/files).', {
      detail: { pointer: '/data/relationships' },
    });
  }
  if (doc.data.relationships && doc.data.relationship && doc.data.relationship.input.data.id !== doc.data.relationships.input.data.id) {
    throw new AppError('invalid_field', '/data/relationship and /data/relationships name different input files; send one of them.', { detail: { pointer: '/data/relationship' } });
  }
  const output = outputFormatOf(attributes.format.output);
  if (!output) {
    throw new AppError('unsupported_format', `format.output ${JSON.stringify(attributes.format.output.slice(0, 100))} is not a format Kiln writes; GET /api/formats lists them.`, {
      detail: { pointer: OUTPUT_POINTER },
    });
  }
  const declaredInput = inputKindOf(attributes.format.input);
  if (!declaredInput) {
    throw new AppError('unsupported_format', `format.input ${JSON.stringify(attributes.format.input.slice(0, 100))} is not a file type Kiln reads; GET /api/formats lists them.`, {
      detail: { pointer: INPUT_POINTER },
    });
  }

  const idPointer = `${relPointer}/input/data/id`;
  const inputId = rel.input.data.id;
  const found = isUuid(inputId) ? await getTurbofilesFile(deps.pool, inputId, key.id) : undefined;
  if (!found) throw new AppError('not_found', `No file ${inputId.slice(0, 100)}: declare it with POST /v1/files and upload its bytes first.`, { detail: { pointer: idPointer } });
  const file = await settleIfUploadedDirectly(deps, found);
  const status = fileStatus(file);
  if (status !== 'READY') {
    throw new AppError(
      'file_not_ready',
      status === 'EXPIRED'
        ? `File ${file.id} has expired (files live ${deps.config.TURBOFILES_FILE_TTL_HOURS} h, TURBOFILES_FILE_TTL_HOURS); declare and upload it again.`
        : `File ${file.id} is still awaiting its upload; PUT its bytes to its links.upload, then create the task.${file.uploadError ? ` The last upload was refused: ${file.uploadError}` : ''}`,
      { detail: { pointer: idPointer, status } },
    );
  }
  const kind = file.kind as InputKind;
  if (!sameContent(declaredInput, kind)) {
    throw new AppError(
      'format_mismatch',
      `format.input is ${attributes.format.input.slice(0, 100)}, but file ${file.id} is ${INPUT_INFO[kind].mime} (${kind}); send its real format.`,
      {
        detail: { pointer: INPUT_POINTER, declared: attributes.format.input.slice(0, 100), detected: kind },
      },
    );
  }
  const label = `File ${file.id}`;
  try {
    checkPair({ index: 0, filename: declaredFilename(file), size: file.size, kind, label }, output, 'convert');
  } catch (err) {
    throw pointAt(err, OUTPUT_POINTER);
  }

  const settings = attributes.settings ?? {};
  let webhookUrl: string | undefined;
  try {
    webhookUrl = await jobWebhookUrlOf(deps, key.id, attributes.webhook_url, 'webhook_url');
  } catch (err) {
    throw pointAt(err, '/data/attributes/webhook_url');
  }
  const options = fileOptionsFor({ format: output, ...resizeOptionsFor(settings.resize) });
  let submitted: Awaited<ReturnType<typeof submitJob>>;
  // Read inside the job's transaction: the task as created (PENDING), before a worker can claim it.
  let asCreated: TaskRow | undefined;
  try {
    const admission = await admitSubmission(deps, key, idempotencyKey);
    submitted = await submitJob(deps, admission, {
      jobId: crypto.randomUUID(),
      jobType: 'convert',
      createArchive: false,
      dialect: 'turbofiles',
      ...(webhookUrl ? { webhookUrl } : {}),
      files: [{ fileId: crypto.randomUUID(), sourceKey: file.storageKey!, filename: declaredFilename(file), kind, size: file.size, options }],
      beforeCommit: async (jobId, tx) => {
        const ok = await insertTask(tx, { jobId, apiKeyId: key.id, inputFileId: file.id, format: attributes.format, settings });
        if (!ok) throw new InputGone();
        asCreated = await getTask(tx, jobId, key.id);
      },
    });
  } catch (err) {
    if (err instanceof InputGone)
      throw new AppError('file_not_ready', `File ${file.id} was deleted or expired while the task was being created.`, { detail: { pointer: idPointer } });
    // Of the key's limits only allowedFormats is about a member of this document; quota and concurrency are not.
    throw isAppError(err) && err.code === 'format_not_allowed' ? pointAt(err, OUTPUT_POINTER) : err;
  }
  const task = submitted.created ? asCreated : await getTask(deps.pool, submitted.jobId, key.id);
  if (!task) {
    // An Idempotency-Key this key used for a Convertly job: that job is not a task.
    throw new AppError('conflict', `Idempotency-Key ${idempotencyKey ?? ''} was already used for job ${submitted.jobId}, which is not a task; use a new key.`, {
      detail: { header: 'Idempotency-Key' },
    });
  }
  return { task, created: submitted.created };
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const latest = (...ds: (Date | null)[]) => new Date(Math.max(...ds.filter((d): d is Date => !!d).map((d) => d.getTime())));

/** What the worker recorded, in the dialect's snake_case: engine, dimensions, duration, sizes; or why it failed. */
function processingMetadata(t: TaskRow): Record<string, unknown> {
  const f = t.file;
  if (t.status === 'pending' || t.status === 'processing') return { progress: f.status === 'completed' || f.status === 'failed' ? 100 : f.progress };
  if (f.status === 'failed' || !f.result) {
    return { error: { code: f.errorCode ?? 'engine_failed', message: fileErrorMessage(f) || 'The conversion failed.' }, input_size: f.originalSize };
  }
  const r = readFileResult(f.result);
  const out: Record<string, unknown> = {
    engine: r.engine,
    format: r.format,
    mime_type: r.mimeType,
    width: r.width,
    height: r.height,
    duration_seconds: r.durationSeconds,
    input_size: f.originalSize,
    output_size: r.finalSize,
    saved_percent: r.savedPercent,
    applied_quality: r.appliedQuality,
    notes: r.notes,
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined && v !== null));
}

export function taskResource(deps: Pick<GatewayDeps, 'config'>, req: Request, t: TaskRow): Resource<TaskAttributes> {
  const base = publicBaseUrl(deps.config, req);
  const self = `${base}/v1/tasks/${t.id}`;
  const rel = (name: 'input' | 'output', id: string | null) => ({
    data: id ? { type: 'files', id } : null,
    links: { self: `${self}/relationships/${name}`, related: `${self}/${name}` },
  });
  return {
    type: 'tasks',
    id: t.id,
    attributes: {
      public: false,
      format: t.format,
      settings: t.settings,
      status: TASK_STATUSES[t.status],
      started_at: iso(t.startedAt),
      processed_at: iso(t.completedAt),
      processing_metadata: processingMetadata(t),
      created_at: t.createdAt.toISOString(),
      updated_at: latest(t.createdAt, t.startedAt, t.completedAt).toISOString(),
    },
    relationships: { input: rel('input', t.inputFileId), output: rel('output', t.output?.id ?? null) },
    links: { self },
  };
}

/** Which related files a request wants in `included`: both by default, or those `include` names. */
export type Includes = { input: boolean; output: boolean };

export function parseInclude(raw: unknown): Includes {
  if (raw === undefined) return { input: true, output: true };
  const names = typeof raw === 'string' ? raw.split(',').filter(Boolean) : undefined;
  const bad = names ? names.filter((n) => n !== 'input' && n !== 'output') : ['(several include parameters)'];
  if (!names || bad.length) {
    throw new AppError('invalid_field', `include may name input and output (comma-separated); ${bad.join(', ')} is not a relationship of a task.`, {
      detail: { parameter: 'include' },
    });
  }
  return { input: names.includes('input'), output: names.includes('output') };
}

/** The files tasks point at, each once: inputs (their declared files) and outputs (their results). */
export async function includedFiles(deps: GatewayDeps, req: Request, tasks: TaskRow[], want: Includes): Promise<Resource[]> {
  const out: Resource[] = [];
  const seen = new Set<string>();
  if (want.input) {
    const inputs = await getTurbofilesFilesById(
      deps.pool,
      tasks.map((t) => t.inputFileId),
    );
    for (const t of tasks) {
      const f = inputs.get(t.inputFileId);
      if (!f || f.deleted || seen.has(f.id)) continue;
      seen.add(f.id);
      out.push(await fileResource(deps, req, f satisfies TurbofilesFileRow));
    }
  }
  if (want.output) {
    for (const t of tasks) {
      if (!t.output || seen.has(t.output.id)) continue;
      seen.add(t.output.id);
      out.push(outputResource(deps, req, t.output));
    }
  }
  return out;
}
