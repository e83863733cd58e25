import path from 'node:path';
import { readdir } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import { isHidden, isVideoFile, listFiles, readClassList, ucfGroup, type LoadDatasetOptions, type VideoDataset, type VideoSample } from '../dataset.js';

const SPLIT_DIRS = ['train', 'val', 'validation', 'test'];

/**
 * A folder per class: `<root>/<class>/<video>`, split `all`; or, when the root holds `train/`,
 * `val/` or `test/`, one split per such folder with class folders inside. Classes sorted by name.
 */
export async function loadFolder(root: string, options: LoadDatasetOptions = {}): Promise<VideoDataset> {
  let top: string[];
  try {
    top = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && !isHidden(e.name)).map((e) => e.name).sort();
  } catch {
    throw new UserError(`folder: cannot read ${root}`);
  }
  const splitDirs = top.filter((d) => SPLIT_DIRS.includes(d.toLowerCase()));
  const layout: { split: string; dir: string }[] = splitDirs.length > 0
    ? splitDirs.map((d) => ({ split: d.toLowerCase() === 'validation' ? 'val' : d.toLowerCase(), dir: d }))
    : [{ split: 'all', dir: '' }];
  const files: { split: string; cls: string; rel: string }[] = [];
  for (const { split, dir } of layout) {
    for (const rel of await listFiles(path.join(root, dir))) {
      if (!isVideoFile(rel)) continue;
      const parts = rel.split('/');
      if (parts.length < 2) continue; // loose files at the top have no class
      files.push({ split, cls: parts[0]!, rel: dir ? `${dir}/${rel}` : rel });
    }
  }
  const classes = options.classList ? await readClassList(options.classList) : [...new Set(files.map((f) => f.cls))].sort();
  if (classes.length === 0) throw new UserError(`folder: no class folders with videos under ${root}`);
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const splits: Record<string, VideoSample[]> = {};
  for (const { split } of layout) splits[split] = [];
  for (const f of files) {
    const label = classIndex.get(f.cls);
    if (label === undefined) throw new UserError(`folder: class folder "${f.cls}" is not in the class list ${options.classList}`);
    splits[f.split]!.push({ path: path.join(root, f.rel), relPath: f.rel, label, group: ucfGroup(f.rel) ?? f.rel });
  }
  return { format: 'folder', root, classes, splits, missing: [] };
}
