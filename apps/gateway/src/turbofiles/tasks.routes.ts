/** `/v1/tasks`: create (POST), read one, list; and each task's input and output as related resources. */
import { Router, type Request } from 'express';
import { AppError, createTaskDocument, isUuid, parseDocument, parsePageQuery } from '@kiln/contracts';
import { getTask, getTaskOutput, getTurbofilesFile, listTasks, type TaskRow } from '@kiln/db';
import type { GatewayDeps } from '../deps.ts';
import { apiKeyOf } from '../auth.ts';
import { idempotencyKeyOf } from '../multipart-intake.ts';
import { fileResource, outputResource } from './files.service.ts';
import { checkPrimaryResource, onlyParameters, pageLinks, resourceDocument, selfLink, sendDocument } from './jsonapi.ts';
import { createTask, includedFiles, parseInclude, taskResource } from './tasks.service.ts';

async function taskOf(deps: GatewayDeps, req: Request): Promise<TaskRow> {
  const id = String(req.params.id ?? '');
  const task = isUuid(id) ? await getTask(deps.pool, id, apiKeyOf(req).id) : undefined;
  if (!task) throw new AppError('not_found', `No task ${id.slice(0, 100)}.`);
  return task;
}

export function tasksRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.post('/tasks', async (req, res) => {
    onlyParameters(req, []);
    const doc = parseDocument(createTaskDocument, req.body);
    checkPrimaryResource(doc.data, 'tasks');
    const { task, created } = await createTask(deps, apiKeyOf(req), doc, idempotencyKeyOf(req));
    const resource = taskResource(deps, req, task);
    res.set('Location', resource.links.self);
    if (!created) res.set('Idempotent-Replayed', 'true');
    const included = await includedFiles(deps, req, [task], { input: true, output: !created });
    sendDocument(res, created ? 201 : 200, { links: { self: resource.links.self }, data: resource, included });
  });

  r.get('/tasks', async (req, res) => {
    onlyParameters(req, ['page[size]', 'page[after]', 'page[before]', 'include']);
    const include = parseInclude(req.query.include);
    const page = parsePageQuery(req.query);
    const found = await listTasks(deps.pool, apiKeyOf(req).id, page);
    const keep = typeof req.query.include === 'string' ? { include: req.query.include } : {};
    sendDocument(res, 200, {
      ...pageLinks(deps.config, req, page, found, keep),
      data: found.rows.map((t) => taskResource(deps, req, t)),
      included: await includedFiles(deps, req, found.rows, include),
    });
  });

  r.get('/tasks/:id', async (req, res) => {
    onlyParameters(req, ['include']);
    const include = parseInclude(req.query.include);
    const task = await taskOf(deps, req);
    sendDocument(res, 200, resourceDocument(deps.config, req, taskResource(deps, req, task), await includedFiles(deps, req, [task], include)));
  });

  // The related resources and relationship objects the task's relationships link to.
  for (const name of ['input', 'output'] as const) {
    const idOf = (t: TaskRow) => (name === 'input' ? t.inputFileId : (t.output?.id ?? null));
    r.get(`/tasks/:id/${name}`, async (req, res) => {
      onlyParameters(req, []);
      const task = await taskOf(deps, req);
      const key = apiKeyOf(req);
      const id = idOf(task);
      const declared = id && name === 'input' ? await getTurbofilesFile(deps.pool, id, key.id) : undefined;
      const output = id && name === 'output' ? await getTaskOutput(deps.pool, id, key.id) : undefined;
      const data = declared ? await fileResource(deps, req, declared) : output ? outputResource(deps, req, output) : null;
      sendDocument(res, 200, resourceDocument(deps.config, req, data));
    });
    r.get(`/tasks/:id/relationships/${name}`, async (req, res) => {
      onlyParameters(req, []);
      const task = await taskOf(deps, req);
      const id = idOf(task);
      const self = selfLink(deps.config, req);
      sendDocument(res, 200, { links: { self, related: self.replace(`/relationships/${name}`, `/${name}`) }, data: id ? { type: 'files', id } : null });
    });
  }

  return r;
}
