import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import { writeFileAtomic } from './fs.js';

export type { TopLevelSpec as VegaLiteSpec } from 'vega-lite';

/**
 * Renders a Vega-Lite chart to SVG (vega's headless renderer) and, when asked, to PNG (resvg, with
 * the system's fonts). Charts are declared, never drawn by hand.
 */
export async function renderChart(spec: TopLevelSpec): Promise<{ svg: string; png: () => Uint8Array }> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return {
      svg,
      png: () => new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng(),
    };
  } finally {
    view.finalize();
  }
}

/** Writes `base.svg` and `base.png` atomically; returns the two paths. */
export async function writeChart(spec: TopLevelSpec, base: string): Promise<[string, string]> {
  const { svg, png } = await renderChart(spec);
  writeFileAtomic(`${base}.svg`, svg);
  writeFileAtomic(`${base}.png`, png());
  return [`${base}.svg`, `${base}.png`];
}
