// A worker as a separate, detached process with a pid file: the lab demo leaves one running
// for the Web UI, and crash tests kill it with SIGKILL and start another.
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../client/paths';

export interface WorkerProcessOptions {
  /** Holds worker.pid and worker.log. */
  dir: string;
  address: string;
  namespace?: string;
  taskQueue?: string;
  /** Prebuilt workflow bundle; without one the worker bundles at start (slower). */
  workflowBundlePath?: string;
  name?: string;
  /** Worker Versioning: the Worker Deployment to join, as `worker --deployment` does. */
  deployment?: string;
  /** Make this worker's build current in its deployment once it polls (`--make-current`). */
  makeCurrent?: boolean;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function workerPid(dir: string, name = 'worker'): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, `${name}.pid`), 'utf8'));
    return pid && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs compiled code when this file is compiled, the TypeScript source through tsx otherwise.
 * `npm test` compiles dist/ just before the tests and sets NOVA_UPGRADE_TEST_COMPILED, so the
 * tests' workers start from it as well (tsx costs about 2 s of CPU more per start).
 */
function entry(): string[] {
  if (!__filename.endsWith('.ts')) return [join(__dirname, 'main.js')];
  if (process.env.NOVA_UPGRADE_TEST_COMPILED === '1') return [join(repoRoot(), 'dist', 'worker', 'main.js')];
  return ['--import', 'tsx', join(__dirname, 'main.ts')];
}

export async function startWorkerProcess(
  opts: WorkerProcessOptions,
): Promise<{ pid: number; log: string; alreadyRunning: boolean }> {
  const name = opts.name ?? 'worker';
  mkdirSync(opts.dir, { recursive: true });
  const log = join(opts.dir, `${name}.log`);
  const running = workerPid(opts.dir, name);
  if (running) return { pid: running, log, alreadyRunning: true };
  appendFileSync(log, `=== start ${new Date().toISOString()}\n`);
  const out = openSync(log, 'a');
  const child = spawn(process.execPath, entry(), {
    detached: true,
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: opts.address,
      TEMPORAL_NAMESPACE: opts.namespace ?? 'default',
      ...(opts.taskQueue ? { NOVA_UPGRADE_TASK_QUEUE: opts.taskQueue } : {}),
      ...(opts.workflowBundlePath ? { NOVA_UPGRADE_WORKFLOW_BUNDLE: opts.workflowBundlePath } : {}),
      ...(opts.deployment ? { NOVA_UPGRADE_DEPLOYMENT: opts.deployment } : {}),
      ...(opts.makeCurrent ? { NOVA_UPGRADE_MAKE_CURRENT: 'true' } : {}),
    },
  });
  child.unref();
  writeFileSync(join(opts.dir, `${name}.pid`), String(child.pid));
  // The worker logs this line once it polls; before that an upgrade would sit unanswered.
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const text = readFileSync(log, 'utf8');
    if (text.lastIndexOf('worker polling task queue') > text.lastIndexOf('=== start')) break;
    if (!alive(child.pid!)) throw new Error(`the worker exited at start; see ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: child.pid!, log, alreadyRunning: false };
}

export async function stopWorkerProcess(
  dir: string,
  signal: NodeJS.Signals = 'SIGTERM',
  name = 'worker',
): Promise<boolean> {
  const pid = workerPid(dir, name);
  if (!pid) return false;
  process.kill(pid, signal);
  const deadline = Date.now() + 20_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(join(dir, `${name}.pid`), { force: true });
  return true;
}
