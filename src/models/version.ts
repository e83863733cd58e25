import { readFileSync } from 'node:fs';

/** The package version (package.json's), recorded in every checkpoint stcnet writes. */
export const STCNET_VERSION: string = (() => {
  // dist/src/models/version.js → the package root is three folders up.
  const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
})();
