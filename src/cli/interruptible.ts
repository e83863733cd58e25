/**
 * Runs a long job (training, transfer) so that Ctrl-C asks it to stop after the current step and save
 * a checkpoint (exit status 130), and a second Ctrl-C quits at once, the last checkpoint on disk intact.
 */
export async function runInterruptible(name: string, job: (signal: AbortSignal) => Promise<{ status: string }>,
  options: { announce?: boolean } = {}): Promise<void> {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) {
      process.stderr.write(`\n${name}: interrupted again; quitting without saving (the last checkpoint on disk is intact)\n`);
      process.exit(130);
    }
    controller.abort();
    // A distributed job's other ranks stop with rank 0 and leave the announcing to it.
    if (options.announce ?? true) process.stderr.write(`\n${name}: interrupted; saving a checkpoint after this step (Ctrl-C again to quit at once)\n`);
  };
  process.on('SIGINT', onSignal);
  try {
    const summary = await job(controller.signal);
    if (summary.status === 'interrupted') process.exitCode = 130;
  } finally {
    process.off('SIGINT', onSignal);
  }
}
