import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { exportOnnx } from '../../src/export/index.js';
import { serveFixture } from './fixture.js';
import { request, startService } from './service.js';

/**
 * --static: the service also serves the browser page and the model it runs, exported from the
 * checkpoint at start into the temp folder (removed at exit), or the file --onnx names; the
 * prediction API is unchanged beside it.
 */

test('stcnet serve --static exports the checkpoint at start, serves the page and the ONNX model beside the API, and removes the export at exit', async () => {
  const fixture = await serveFixture();
  const tmp = tempDir('stcnet-serve-static-');
  const s = await startService(fixture.checkpoint, ['--static', '--clips', '1', '--tmp-dir', tmp]);
  const exported = readdirSync(tmp).find((name) => name.startsWith('stcnet-serve-onnx-'));
  assert.ok(exported, `an export folder in --tmp-dir: ${readdirSync(tmp).join(', ')}`);
  const page = await request(s.url, { path: '/' });
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  const onnxFile = join(tmp, exported, 'model.onnx');
  const served = await request(s.url, { path: '/model.onnx' });
  assert.equal(served.status, 200);
  assert.equal(Number(served.headers['content-length']), readFileSync(onnxFile).length);
  const prediction = await request(s.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'video/mp4' }, body: readFileSync(fixture.videos[0]!) });
  assert.equal(prediction.status, 200, prediction.body);
  assert.match(s.stderr(), /exporting .*model\.safetensors to ONNX for the page/);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
  assert.deepEqual(readdirSync(tmp), [], 'the export and the upload folder removed at exit');
});

test('stcnet serve --static --onnx FILE serves that file and exports nothing', async () => {
  const fixture = await serveFixture();
  const tmp = tempDir('stcnet-serve-static-');
  const onnx = join(tmp, 'given.onnx');
  await exportOnnx(fixture.checkpoint, onnx);
  const s = await startService(fixture.checkpoint, ['--static', '--onnx', onnx, '--clips', '1']);
  try {
    const served = await request(s.url, { path: '/model.onnx' });
    assert.equal(served.status, 200);
    assert.equal(Number(served.headers['content-length']), readFileSync(onnx).length);
    assert.doesNotMatch(s.stderr(), /exporting/);
  } finally {
    await s.stop();
  }
});
