import path from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { firstExisting, lines, listFiles, readText, ucfGroup, type LoadDatasetOptions, type MissingFile, type VideoDataset, type VideoSample } from '../dataset.js';

/**
 * UCF101: `classInd.txt` ("1 ApplyEyeMakeup"), `trainlist0{1,2,3}.txt` ("Class/v_Class_g08_c01.avi 1",
 * 1-based labels) and `testlist0{1,2,3}.txt` ("Class/v_Class_g01_c01.avi", label from the folder).
 * The lists sit in the root or `ucfTrainTestlist/`; the videos in the root or `UCF-101/`.
 */
export async function loadUcf101(root: string, options: LoadDatasetOptions = {}): Promise<VideoDataset> {
  const annotations = options.annotations ??
    firstExisting([root, path.join(root, 'ucfTrainTestlist'), path.join(root, 'annotations')].filter((d) => existsSync(path.join(d, 'classInd.txt'))));
  if (!annotations) throw new UserError(`ucf101: no classInd.txt in ${root} or ${path.join(root, 'ucfTrainTestlist')} (use --annotations DIR)`);
  const videos = options.videos ?? firstExisting([path.join(root, 'UCF-101')].filter((d) => statSync(d, { throwIfNoEntry: false })?.isDirectory())) ?? root;
  const classFile = path.join(annotations, 'classInd.txt');
  const classes: string[] = [];
  for (const { text, line } of lines(await readText(classFile, 'ucf101'))) {
    const m = /^(\d+)\s+(\S+)$/.exec(text);
    if (!m) throw new UserError(`ucf101: ${classFile}:${line}: expected "<index> <ClassName>", got "${text}"`);
    const index = Number(m[1]);
    if (index !== classes.length + 1) throw new UserError(`ucf101: ${classFile}:${line}: expected index ${classes.length + 1}, got ${index}`);
    classes.push(m[2]!);
  }
  if (classes.length === 0) throw new UserError(`ucf101: ${classFile} lists no classes`);
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const onDisk = new Set(await listFiles(videos));
  const splits: Record<string, VideoSample[]> = {};
  const missing: MissingFile[] = [];
  for (let n = 1; n <= 3; n++) {
    for (const kind of ['train', 'test'] as const) {
      const file = path.join(annotations, `${kind}list0${n}.txt`);
      if (!existsSync(file)) continue;
      const split = `${kind}${n}`;
      const samples: VideoSample[] = [];
      for (const { text, line } of lines(await readText(file, 'ucf101'))) {
        const parts = text.split(/\s+/);
        const rel = parts[0]!.replace(/\\/g, '/');
        const folder = rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : undefined;
        let label: number;
        if (parts.length >= 2) {
          const index = Number(parts[1]);
          if (!Number.isInteger(index) || index < 1 || index > classes.length) {
            throw new UserError(`ucf101: ${file}:${line}: label must be 1..${classes.length}, got "${parts[1]}"`);
          }
          label = index - 1;
        } else {
          const fromFolder = folder !== undefined ? classIndex.get(folder) : undefined;
          if (fromFolder === undefined) throw new UserError(`ucf101: ${file}:${line}: class folder "${folder ?? rel}" is not in classInd.txt`);
          label = fromFolder;
        }
        if (!onDisk.has(rel)) {
          missing.push({ split, path: path.join(videos, rel), listedIn: file, line });
          continue;
        }
        samples.push({ path: path.join(videos, rel), relPath: rel, label, group: ucfGroup(rel) ?? rel });
      }
      splits[split] = samples;
    }
  }
  if (Object.keys(splits).length === 0) throw new UserError(`ucf101: no trainlist0N.txt/testlist0N.txt in ${annotations}`);
  return { format: 'ucf101', root: videos, classes, splits, missing };
}
