import { UserError } from '../../util/errors.js';
import { DATASET_FORMATS, type DatasetFormat, type LoadDatasetOptions, type VideoDataset } from '../dataset.js';
import { loadFolder } from './folder.js';
import { loadHmdb51 } from './hmdb51.js';
import { loadKinetics } from './kinetics.js';
import { loadManifest } from './manifest.js';
import { loadUcf101 } from './ucf101.js';

export { loadFolder, loadHmdb51, loadKinetics, loadManifest, loadUcf101 };
export { kineticsFileStem } from './kinetics.js';

/** Loads a dataset in one of the supported formats (for `manifest`, `root` is the manifest file). */
export async function loadDataset(root: string, format: string, options: LoadDatasetOptions = {}): Promise<VideoDataset> {
  if (!(DATASET_FORMATS as readonly string[]).includes(format)) {
    throw new UserError(`unknown dataset format "${format}"; expected one of ${DATASET_FORMATS.join(', ')}`);
  }
  refuseOptionsNotTaken(format as DatasetFormat, options);
  switch (format as DatasetFormat) {
    case 'ucf101': return loadUcf101(root, options);
    case 'hmdb51': return loadHmdb51(root, options);
    case 'kinetics': return loadKinetics(root, options);
    case 'folder': return loadFolder(root, options);
    case 'manifest': return loadManifest(root, options);
  }
}

/** The options each format reads; one given to a format that would ignore it is refused, never dropped silently. */
const OPTIONS_TAKEN: Record<DatasetFormat, readonly (keyof LoadDatasetOptions)[]> = {
  ucf101: ['annotations', 'videos'],
  hmdb51: ['annotations', 'videos', 'classList'],
  kinetics: ['annotations', 'videos', 'classList'],
  folder: ['classList'],
  manifest: ['videos', 'classList'],
};

const OPTION_FLAGS: Record<keyof LoadDatasetOptions, string> = { annotations: '--annotations', videos: '--videos', classList: '--class-list' };

function refuseOptionsNotTaken(format: DatasetFormat, options: LoadDatasetOptions): void {
  for (const name of Object.keys(OPTION_FLAGS) as (keyof LoadDatasetOptions)[]) {
    if (options[name] === undefined || OPTIONS_TAKEN[format].includes(name)) continue;
    const takers = DATASET_FORMATS.filter((f) => OPTIONS_TAKEN[f].includes(name));
    throw new UserError(`${OPTION_FLAGS[name]} ${options[name]}: the ${format} format does not use it (only ${takers.join(', ')} do)`);
  }
}
