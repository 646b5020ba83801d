/** `GET /api/formats` answers from the registry itself: nothing in the route can drift from it. */
import express from 'express';
import request from 'supertest';
import { FORMAT_ALIASES, OUTPUT_FORMATS, parseOutputFormat } from '@kiln/formats';
import { formatsRouter } from '../src/formats.routes.ts';

test('GET /api/formats lists every alias the format field accepts, each naming a real output format', async () => {
  const app = express().use('/api', formatsRouter());
  const res = await request(app).get('/api/formats');
  expect(res.status).toBe(200);
  const aliases = res.body.aliases as Record<string, string>;
  expect(aliases).toEqual({ ...FORMAT_ALIASES });
  expect(Object.keys(aliases)).toEqual(expect.arrayContaining(['jpeg', 'tif']));
  for (const [alias, canonical] of Object.entries(aliases)) {
    expect(OUTPUT_FORMATS).toContain(canonical);
    expect(parseOutputFormat(alias)).toBe(canonical);
  }
});
