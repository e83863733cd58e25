import path from 'node:path';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import { isHidden, lines, listFiles, readClassList, readText, type LoadDatasetOptions, type MissingFile, type VideoDataset, type VideoSample } from '../dataset.js';

const SPLIT_FILE = /^(.+)_test_split([123])\.txt$/;

/**
 * HMDB51: `<class>_test_split{1,2,3}.txt` with lines "<video>.avi <tag>", tag 1 = train, 2 = test,
 * 0 = not used. The lists sit in the root or `testTrainMulti_7030_splits/`; videos in `<root>/<class>/`.
 * Classes are sorted by name (the official order).
 */
export async function loadHmdb51(root: string, options: LoadDatasetOptions = {}): Promise<VideoDataset> {
  const hasLists = async (dir: string): Promise<boolean> =>
    existsSync(dir) && (await readdir(dir)).some((f) => !isHidden(f) && SPLIT_FILE.test(f));
  let annotations = options.annotations;
  if (!annotations) {
    for (const dir of [root, path.join(root, 'testTrainMulti_7030_splits'), path.join(root, 'splits')]) {
      if (await hasLists(dir)) {
        annotations = dir;
        break;
      }
    }
  }
  if (!annotations) throw new UserError(`hmdb51: no <class>_test_split1.txt files in ${root} or ${path.join(root, 'testTrainMulti_7030_splits')} (use --annotations DIR)`);
  const videos = options.videos ?? root;
  const files = (await readdir(annotations)).filter((f) => !isHidden(f) && SPLIT_FILE.test(f)).sort();
  const classNames = [...new Set(files.map((f) => SPLIT_FILE.exec(f)![1]!))].sort();
  const classes = options.classList ? await readClassList(options.classList) : classNames;
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const onDisk = new Set(await listFiles(videos));
  const splits: Record<string, VideoSample[]> = {};
  const missing: MissingFile[] = [];
  for (const n of [1, 2, 3]) {
    const train: VideoSample[] = [];
    const test: VideoSample[] = [];
    let any = false;
    for (const cls of classNames) {
      const file = path.join(annotations, `${cls}_test_split${n}.txt`);
      if (!existsSync(file)) continue;
      any = true;
      const label = classIndex.get(cls);
      if (label === undefined) throw new UserError(`hmdb51: class "${cls}" (from ${file}) is not in the class list`);
      for (const { text, line } of lines(await readText(file, 'hmdb51'))) {
        const m = /^(\S+)\s+([012])$/.exec(text);
        if (!m) throw new UserError(`hmdb51: ${file}:${line}: expected "<video.avi> <0|1|2>", got "${text}"`);
        if (m[2] === '0') continue;
        const rel = `${cls}/${m[1]}`;
        const split = m[2] === '1' ? `train${n}` : `test${n}`;
        if (!onDisk.has(rel)) {
          missing.push({ split, path: path.join(videos, rel), listedIn: file, line });
          continue;
        }
        // Clips cut from one source video share its name up to the trailing _<n>.
        const group = `${cls}/${m[1]!.replace(/_\d+\.[^.]+$/, '')}`;
        (m[2] === '1' ? train : test).push({ path: path.join(videos, rel), relPath: rel, label, group });
      }
    }
    if (any) {
      splits[`train${n}`] = train;
      splits[`test${n}`] = test;
    }
  }
  return { format: 'hmdb51', root: videos, classes, splits, missing };
}
