/**
 * `/v1/files`: declare (POST), read (GET one, GET the list), delete; and the two signed links that
 * need no API key, the upload (PUT) and the download of a declared file's own bytes.
 */
import { Router, type Request, type Response } from 'express';
import { AppError, createFileDocument, isUuid, parseDocument, parsePageQuery } from '@kiln/contracts';
import { INPUT_INFO, type InputKind } from '@kiln/formats';
import { deleteTaskOutput, deleteTurbofilesFile, getTaskOutput, getTurbofilesFile, listTurbofilesFiles, markUploadPurged } from '@kiln/db';
import { keys } from '@kiln/storage';
import type { GatewayDeps } from '../deps.ts';
import { apiKeyOf } from '../auth.ts';
import { sendBlob } from '../files.routes.ts';
import { checkDownloadLink, declareFile, declaredFilename, fileResource, fileStatus, outputResource, receiveUpload, settleIfUploadedDirectly } from './files.service.ts';
import { checkPrimaryResource, onlyParameters, pageLinks, resourceDocument, sendDocument } from './jsonapi.ts';

const fileIdParam = (req: Request): string => {
  const id: unknown = req.params.id;
  if (!isUuid(id)) throw new AppError('not_found', `No file ${String(id).slice(0, 100)}.`);
  return id;
};

/** The upload and download links: the signature is the permission, so they come before authentication. */
export function signedFileLinks(deps: GatewayDeps): Router {
  const r = Router();
  r.put('/files/:id/upload', async (req: Request, res: Response) => {
    const f = await receiveUpload(deps, req, String(req.params.id ?? ''));
    sendDocument(res, 200, resourceDocument(deps.config, req, await fileResource(deps, req, f)));
  });
  r.get('/files/:id/download', async (req: Request, res: Response) => {
    const id = String(req.params.id ?? '');
    checkDownloadLink(deps, req, id);
    const f = await getTurbofilesFile(deps.pool, id);
    const ready = f && fileStatus(f) === 'READY' && f.storageKey;
    if (
      !ready ||
      !(await sendBlob(deps, req, res, { storageKey: f.storageKey!, filename: declaredFilename(f), mimeType: INPUT_INFO[f.kind as InputKind]?.mime ?? 'application/octet-stream' }))
    ) {
      throw new AppError('not_found', 'This file is no longer stored: files are deleted when they expire or are deleted.');
    }
  });
  return r;
}

export function filesRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.post('/files', async (req, res) => {
    onlyParameters(req, []);
    const doc = parseDocument(createFileDocument, req.body);
    checkPrimaryResource(doc.data, 'files');
    const f = await declareFile(deps, apiKeyOf(req), doc);
    const resource = await fileResource(deps, req, f);
    res.set('Location', resource.links.self);
    sendDocument(res, 201, { links: { self: resource.links.self }, data: resource });
  });

  r.get('/files', async (req, res) => {
    onlyParameters(req, ['page[size]', 'page[after]', 'page[before]']);
    const page = parsePageQuery(req.query);
    const found = await listTurbofilesFiles(deps.pool, apiKeyOf(req).id, page);
    const data = await Promise.all(found.rows.map((f) => (f.origin === 'upload' ? fileResource(deps, req, f) : outputResource(deps, req, f))));
    sendDocument(res, 200, { ...pageLinks(deps.config, req, page, found), data });
  });

  r.get('/files/:id', async (req, res) => {
    onlyParameters(req, []);
    const id = fileIdParam(req);
    const key = apiKeyOf(req);
    const declared = await getTurbofilesFile(deps.pool, id, key.id);
    if (declared) {
      sendDocument(res, 200, resourceDocument(deps.config, req, await fileResource(deps, req, await settleIfUploadedDirectly(deps, declared))));
      return;
    }
    const output = await getTaskOutput(deps.pool, id, key.id);
    if (!output) throw new AppError('not_found', `No file ${id}.`);
    sendDocument(res, 200, resourceDocument(deps.config, req, outputResource(deps, req, output)));
  });

  r.delete('/files/:id', async (req, res) => {
    onlyParameters(req, []);
    const id = fileIdParam(req);
    const key = apiKeyOf(req);
    const outcome = await deleteTurbofilesFile(deps.pool, id, key.id);
    if (outcome === 'in_use') {
      throw new AppError('conflict', `File ${id} is the input of a task still pending or processing; delete it once the task has finished.`, { detail: { status: 'in_use' } });
    }
    if (outcome === 'deleted') {
      // The row is already gone for clients; if the store fails now, the retention sweep deletes the bytes later.
      await deps.store.delete([keys.uploads(id)]);
      await markUploadPurged(deps.pool, id);
    } else {
      const storageKey = await deleteTaskOutput(deps.pool, id, key.id);
      if (!storageKey) throw new AppError('not_found', `No file ${id}.`);
      // Under its job's folder: if this fails, the job's retention deletes it.
      await deps.store.delete([storageKey]);
    }
    res.status(204).end();
  });

  return r;
}
