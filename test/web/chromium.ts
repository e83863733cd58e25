import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium, headless, driven by playwright-core: nothing is downloaded, the browser starts
 * with a fresh profile (removed on close) and without background network traffic.
 */
export const CHROMIUM = process.env.STCNET_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Messages the page logged and errors it threw (for failure messages). */
  log: string[];
  close(): Promise<void>;
}

/**
 * WebGPU on the CPU: Chromium's SwiftShader Vulkan adapter (in the browser package; nothing is
 * downloaded), in place of --disable-gpu.
 */
const SOFTWARE_WEBGPU = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader'];

/** `extraArgs`: more switches (the fake camera's, for the webcam test); `softwareWebGpu`: SwiftShader's WebGPU adapter. */
export async function launchChromium(extraArgs: string[] = [], options: { softwareWebGpu?: boolean } = {}): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'stcnet-chromium-'));
  const args = [...(options.softwareWebGpu ? [...ARGS.filter((a) => a !== '--disable-gpu'), ...SOFTWARE_WEBGPU] : ARGS), ...extraArgs];
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  const page = context.pages()[0] ?? await context.newPage();
  const log: string[] = [];
  page.on('console', (message) => log.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
  return {
    context, page, log,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
