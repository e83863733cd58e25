import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLabels, readLabels } from '../../src/train/labels.js';
import { sharedVideos, sharedVideosAvailable, tempDir } from '../helpers.js';

test('the label maps beside the real clips read as one name per line', (t) => {
  const names = ['kinetics400_label_map.txt', 'ucf101_label_map.txt', 'hmdb51_label_map.txt', 'ntu60_label_map.txt'];
  if (!sharedVideosAvailable(t, ...names.map((name) => join('label_maps', name)))) return;
  const maps = join(sharedVideos, 'label_maps');
  const k400 = readLabels(join(maps, 'kinetics400_label_map.txt'));
  assert.equal(k400.length, 400);
  assert.equal(k400[0], 'abseiling');
  assert.equal(k400[6], 'arm wrestling'); // demo.mp4's class, per SOURCES.md
  assert.equal(k400[129], 'flipping pancake');
  const ucf = readLabels(join(maps, 'ucf101_label_map.txt'));
  assert.equal(ucf.length, 101);
  assert.equal(ucf[7], 'Basketball');
  assert.equal(readLabels(join(maps, 'hmdb51_label_map.txt')).length, 51);
  const ntu = readLabels(join(maps, 'ntu60_label_map.txt'));
  assert.equal(ntu.length, 60);
  assert.equal(ntu[0], 'drink water');
});

test('classInd.txt (1-based, CRLF), 0-based indices, JSON arrays and maps, id,name CSV', () => {
  assert.deepEqual(parseLabels('1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 Archery\r\n', 'classInd.txt'), ['ApplyEyeMakeup', 'ApplyLipstick', 'Archery']);
  assert.deepEqual(parseLabels('1 b\n0 a\n', 'f'), ['a', 'b']);
  assert.deepEqual(parseLabels('["x", "y z"]', 'f.json'), ['x', 'y z']);
  assert.deepEqual(parseLabels('{"abseiling": 0, "air drumming": 1}', 'f.json'), ['abseiling', 'air drumming']);
  assert.deepEqual(parseLabels('{"1": "second", "0": "first"}', 'f.json'), ['first', 'second']);
  assert.deepEqual(parseLabels('id,name\n0,abseiling\n1,"pull ups, weighted"\n', 'f.csv'), ['abseiling', 'pull ups, weighted']);
  assert.deepEqual(parseLabels('\uFEFFone\n\ntwo\n', 'f'), ['one', 'two']);
});

test('bad label files name the file and what is wrong', () => {
  assert.throws(() => parseLabels('', 'e.txt'), /e\.txt: no class names \(the file is empty\)/);
  assert.throws(() => parseLabels('a\nb\na\n', 'd.txt'), /d\.txt: class "a" is listed twice \(classes 0 and 2/);
  assert.throws(() => parseLabels('1 a\n3 c\n', 'g.txt'), /g\.txt: class index 3 \(line 2\) leaves a gap/);
  assert.throws(() => parseLabels('2 a\n3 b\n', 's.txt'), /s\.txt: class indices must start at 0 or 1, the smallest is 2/);
  assert.throws(() => parseLabels('[1, 2]', 'n.json'), /n\.json: entry 0 of the JSON array is not a class name/);
  assert.throws(() => parseLabels('{"a": "b"}', 'm.json'), /m\.json: expected a JSON array of names/);
  assert.throws(() => parseLabels('[oops', 'j.json'), /j\.json: not valid JSON/);
  const dir = tempDir();
  assert.throws(() => readLabels(join(dir, 'missing.txt')), /missing\.txt: no such file or folder/);
  writeFileSync(join(dir, 'ok.txt'), 'a\nb\n');
  assert.deepEqual(readLabels(join(dir, 'ok.txt')), ['a', 'b']);
});
