// One real Temporal dev server and one workflow bundle per test run. Both are slow enough on two
// cores that doing them per test file would dominate the run.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { findFreePort, startDevServer, stopDevServer } from '../client/devServer';
import { repoRoot } from '../client/paths';

async function bundle(dir: string): Promise<{ path: string | null; error: string | null }> {
  const workflowsPath = join(repoRoot(), 'workflows', 'index.ts');
  if (!existsSync(workflowsPath)) return { path: null, error: `${workflowsPath} does not exist` };
  try {
    const { code } = await bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
    const path = join(dir, 'workflow-bundle.js');
    writeFileSync(path, code);
    return { path, error: null };
  } catch (err) {
    // Only tests that run workflows need the bundle; they report this, the rest still run.
    return {
      path: null,
      error: `bundling ${workflowsPath} failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'nova-upgrade-test-'));
  const stateDir = join(dir, 'temporal');
  const started = Date.now();
  const [server, built] = await Promise.all([
    (async () => startDevServer({ stateDir, port: await findFreePort(), uiPort: await findFreePort() }))(),
    bundle(dir),
  ]);
  console.log(
    `test Temporal server ${server.address} (UI ${server.uiUrl}) ready in ${Date.now() - started} ms; state in ${stateDir}`,
  );
  if (built.error) console.warn(`no workflow bundle: ${built.error}`);
  else console.log(`workflow bundle at ${built.path}`);
  project.provide('temporalAddress', server.address);
  project.provide('temporalNamespace', server.namespace);
  project.provide('temporalUiUrl', server.uiUrl);
  project.provide('workflowBundlePath', built.path);
  project.provide('workflowBundleError', built.error);
  return async () => {
    await stopDevServer(stateDir);
    if (!process.env.NOVA_UPGRADE_KEEP_TEST_STATE) rmSync(dir, { recursive: true, force: true });
  };
}
