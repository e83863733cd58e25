import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadDataset } from '../../src/data/formats/index.js';
import { parseCsv, sampleKey } from '../../src/data/dataset.js';
import { UserError } from '../../src/util/errors.js';

async function touch(root: string, rel: string, content = ''): Promise<void> {
  await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
  await writeFile(path.join(root, rel), content);
}

test('ucf101: official layout, CRLF split files, labels from classInd and folders, groups, missing files', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-ucf-'));
  await touch(root, 'ucfTrainTestlist/classInd.txt', '1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 Archery\r\n');
  await touch(root, 'ucfTrainTestlist/trainlist01.txt',
    'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nApplyLipstick/v_ApplyLipstick_g08_c02.avi 2\r\nArchery/v_Archery_g09_c01.avi 3\r\n');
  await touch(root, 'ucfTrainTestlist/testlist01.txt', 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nArchery/v_Archery_g01_c04.avi\r\n');
  for (const f of ['ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 'ApplyLipstick/v_ApplyLipstick_g08_c02.avi',
    'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', 'Archery/v_Archery_g01_c04.avi']) await touch(root, `UCF-101/${f}`);
  const ds = await loadDataset(root, 'ucf101');
  assert.deepEqual(ds.classes, ['ApplyEyeMakeup', 'ApplyLipstick', 'Archery']);
  assert.equal(ds.root, path.join(root, 'UCF-101'));
  assert.deepEqual(ds.splits.train1!.map((s) => [s.relPath, s.label, s.group]), [
    ['ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 0, 'ApplyEyeMakeup_g08'],
    ['ApplyLipstick/v_ApplyLipstick_g08_c02.avi', 1, 'ApplyLipstick_g08'],
  ]);
  assert.deepEqual(ds.splits.test1!.map((s) => [s.relPath, s.label]), [
    ['ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', 0], ['Archery/v_Archery_g01_c04.avi', 2]]);
  assert.equal(ds.missing.length, 1);
  assert.equal(ds.missing[0]!.split, 'train1');
  assert.equal(ds.missing[0]!.line, 3);
  assert.match(ds.missing[0]!.path, /v_Archery_g09_c01\.avi$/);
});

test('ucf101: a bad label names the file and line', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-ucf-'));
  await touch(root, 'classInd.txt', '1 A\n2 B\n');
  await touch(root, 'trainlist01.txt', 'A/v_A_g01_c01.avi 1\nB/v_B_g01_c01.avi 7\n');
  await assert.rejects(loadDataset(root, 'ucf101'), (e: unknown) => e instanceof UserError && /trainlist01\.txt:2: label must be 1\.\.2, got "7"/.test(e.message));
});

test('hmdb51: <class>_test_split<n>.txt with 0/1/2 tags', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-hmdb-'));
  const lists = 'testTrainMulti_7030_splits';
  await touch(root, `${lists}/brush_hair_test_split1.txt`,
    'April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nApril_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 \nBrushing_Hair_h_nm_np2_le_goo_0.avi 0 \n');
  await touch(root, `${lists}/cartwheel_test_split1.txt`, 'Cartwheel_f_cm_np1_le_med_0.avi 2 \nLost_cartwheel_f_cm_np1_ri_bad_3.avi 1 \n');
  await touch(root, `${lists}/cartwheel_test_split2.txt`, 'Cartwheel_f_cm_np1_le_med_0.avi 1 \n');
  await touch(root, `${lists}/brush_hair_test_split2.txt`, 'April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n');
  for (const f of ['brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi', 'brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi',
    'cartwheel/Cartwheel_f_cm_np1_le_med_0.avi']) await touch(root, f);
  const ds = await loadDataset(root, 'hmdb51');
  assert.deepEqual(ds.classes, ['brush_hair', 'cartwheel']);
  assert.deepEqual(ds.splits.train1!.map((s) => [s.relPath, s.label]), [['brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi', 0]]);
  assert.deepEqual(ds.splits.test1!.map((s) => [s.relPath, s.label]), [
    ['brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi', 0], ['cartwheel/Cartwheel_f_cm_np1_le_med_0.avi', 1]]);
  assert.equal(ds.splits.train1![0]!.group, 'brush_hair/April_09_brush_hair_u_nm_np1_ba_goo');
  assert.equal(ds.splits.train2!.length, 1);
  assert.equal(ds.splits.test2!.length, 1);
  assert.deepEqual(ds.missing.map((m) => [m.split, path.basename(m.path)]), [['train1', 'Lost_cartwheel_f_cm_np1_ri_bad_3.avi']]);
});

test('kinetics: official CSV columns, quoted labels, <id>_<start:06>_<end:06>.mp4 anywhere under the root, unlabeled test', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-k400-'));
  await touch(root, 'annotations/train.csv',
    'label,youtube_id,time_start,time_end,split,is_cc\n' +
    'abseiling,---QUuC4vJs,3,13,train,0\n' +
    '"passing American football (in game)",--6bJUbfpnQ,17,27,train,0\n' +
    '"cooking, egg",-0Kd5rsx3bM,0,10,train,0\n');
  await touch(root, 'annotations/validate.csv', 'label,youtube_id,time_start,time_end,split\nabseiling,0wR5jVB-WPk,417,427,val\n');
  await touch(root, 'annotations/test.csv', 'youtube_id,time_start,time_end,split\nabcdefghijk,5,15,test\n');
  await touch(root, 'train/abseiling/---QUuC4vJs_000003_000013.mp4');
  await touch(root, 'train/passing American football (in game)/--6bJUbfpnQ_000017_000027.mp4');
  await touch(root, 'val/abseiling/0wR5jVB-WPk_000417_000427.mp4');
  await touch(root, 'test/abcdefghijk_000005_000015.mp4');
  const ds = await loadDataset(root, 'kinetics');
  assert.deepEqual(ds.classes, ['abseiling', 'cooking, egg', 'passing American football (in game)']);
  assert.deepEqual(ds.splits.train!.map((s) => [path.basename(s.relPath), s.label, s.group]), [
    ['---QUuC4vJs_000003_000013.mp4', 0, '---QUuC4vJs'], ['--6bJUbfpnQ_000017_000027.mp4', 2, '--6bJUbfpnQ']]);
  assert.equal(ds.splits.val!.length, 1);
  assert.deepEqual(ds.splits.test!.map((s) => s.label), [-1]);
  assert.equal(ds.missing.length, 1);
  assert.match(ds.missing[0]!.path, /-0Kd5rsx3bM_000000_000010\.mp4$/);
});

test('folder: class folders, and train/val split folders', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-folder-'));
  await touch(root, 'jump/a.mp4');
  await touch(root, 'jump/b.avi');
  await touch(root, 'run/c.mkv');
  await touch(root, 'run/notes.txt');
  const ds = await loadDataset(root, 'folder');
  assert.deepEqual(ds.classes, ['jump', 'run']);
  assert.deepEqual(ds.splits.all!.map((s) => [s.relPath, s.label]), [['jump/a.mp4', 0], ['jump/b.avi', 0], ['run/c.mkv', 1]]);
  const split = await mkdtemp(path.join(os.tmpdir(), 'stcnet-folder-'));
  await touch(split, 'train/jump/a.mp4');
  await touch(split, 'train/run/b.mp4');
  await touch(split, 'val/run/c.mp4');
  const ds2 = await loadDataset(split, 'folder');
  assert.deepEqual(Object.keys(ds2.splits).sort(), ['train', 'val']);
  assert.deepEqual(ds2.splits.val!.map((s) => [s.relPath, s.label]), [['val/run/c.mp4', 1]]);
});

test('manifest: CSV and JSONL with optional start/end, split and missing files', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-manifest-'));
  await touch(root, 'v/x.mp4');
  await touch(root, 'v/y.mp4');
  await touch(root, 'list.csv', 'path,label,start,end,split\nv/x.mp4,wave,1.5,3,train\nv/y.mp4,clap,,,val\nv/z.mp4,clap,,,val\n');
  const ds = await loadDataset(path.join(root, 'list.csv'), 'manifest');
  assert.deepEqual(ds.classes, ['clap', 'wave']);
  const x = ds.splits.train![0]!;
  assert.deepEqual([x.relPath, x.label, x.start, x.end], ['v/x.mp4', 1, 1.5, 3]);
  assert.equal(sampleKey(x), 'v/x.mp4@1.5-3');
  assert.equal(ds.missing.length, 1);
  await touch(root, 'list.jsonl', '{"path":"v/x.mp4","label":3}\n{"path":"v/y.mp4","label":0,"start":2}\n');
  const js = await loadDataset(path.join(root, 'list.jsonl'), 'manifest');
  assert.deepEqual(js.classes, ['0', '1', '2', '3']);
  assert.deepEqual(js.splits.all!.map((s) => [s.label, s.start]), [[3, undefined], [0, 2]]);
  await touch(root, 'bad.csv', 'path,label,start,end\nv/x.mp4,a,5,2\n');
  await assert.rejects(loadDataset(path.join(root, 'bad.csv'), 'manifest'), /bad\.csv:2: end \(2\) must be after start \(5\)/);
  await assert.rejects(loadDataset(root, 'nope'), /unknown dataset format "nope"/);
});

test('parseCsv handles quotes, doubled quotes and CRLF', () => {
  assert.deepEqual(parseCsv('a,b\r\n"x, y","say ""hi"""\r\n'), [['a', 'b'], ['x, y', 'say "hi"']]);
});

test('an option the format does not read is refused, naming it and the formats that read it', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-ucf-'));
  await touch(root, 'classInd.txt', '1 A\n');
  await touch(root, 'trainlist01.txt', 'A/v_A_g01_c01.avi\n');
  await touch(root, 'A/v_A_g01_c01.avi');
  const refused = (pattern: RegExp) => (e: unknown) => e instanceof UserError && pattern.test(e.message);
  await assert.rejects(loadDataset(root, 'ucf101', { classList: path.join(root, 'missing.txt') }),
    refused(/^--class-list .*missing\.txt: the ucf101 format does not use it \(only hmdb51, kinetics, folder, manifest do\)$/));
  await assert.rejects(loadDataset(root, 'folder', { annotations: root }), refused(/^--annotations .*: the folder format does not use it/));
  await assert.rejects(loadDataset(root, 'folder', { videos: root }), refused(/^--videos .*: the folder format does not use it/));
  assert.equal((await loadDataset(root, 'ucf101', { annotations: root, videos: root })).splits.train1!.length, 1);
});
