// Tests reach the run's shared server and workflow bundle through here, so a missing bundle
// fails with the bundler's own message instead of a null deep inside Worker.create.
import { inject } from 'vitest';
import { startWorkerProcess } from '../worker/process';

export function sharedTemporal(): { address: string; namespace: string; uiUrl: string } {
  return { address: inject('temporalAddress'), namespace: inject('temporalNamespace'), uiUrl: inject('temporalUiUrl') };
}

/** For `Worker.create({ workflowBundle: workflowBundle() })`. */
export function workflowBundle(): { codePath: string } {
  const codePath = inject('workflowBundlePath');
  if (!codePath)
    throw new Error(`no workflow bundle for this run: ${inject('workflowBundleError') ?? 'unknown reason'}`);
  return { codePath };
}

/**
 * A worker process (worker/process.ts) on the run's shared server (or a test's own server) with
 * the run's workflow bundle, polling `taskQueue`, its pid file and log in `dir`;
 * `stopWorkerProcess(dir)` stops it.
 */
export async function startSharedWorkerProcess(
  dir: string,
  taskQueue: string,
  server: { address: string; namespace: string } = sharedTemporal(),
): Promise<void> {
  const bundle = inject('workflowBundlePath');
  await startWorkerProcess({
    dir,
    address: server.address,
    namespace: server.namespace,
    taskQueue,
    ...(bundle ? { workflowBundlePath: bundle } : {}),
  });
}
