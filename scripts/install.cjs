// npm's `install` script: builds the native addons that are not built yet, in this package's folder.
// It never fails the install: where the build cannot run (no libtorch, no libturbojpeg, no compiler),
// or where npm runs no dependency scripts (npm 11 asks first), the first load builds again and throws
// an error naming what is missing (src/util/addon.ts).
'use strict';
const { existsSync } = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const helper = path.join(__dirname, '..', 'dist', 'src', 'util', 'addon.js');
if (!existsSync(helper)) {
  // A checkout of the repository before its first build: scripts/setup.sh or `npm run build` builds everything.
  process.stderr.write('stcnet: not compiled yet (no dist/); run `npm run build` to build the addons and the TypeScript\n');
  process.exit(0);
}
import(pathToFileURL(helper).href)
  .then((addon) => addon.buildMissingAddons())
  .catch((error) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n` +
      'stcnet: installed without its native addons; they are built on first use once the above is fixed\n');
  });
