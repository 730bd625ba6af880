// The worker: runs the workflows and every remote effect. One SSH pool serves all activities
// in this process, so connections to a node are shared across concurrent steps.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import {
  bundleWorkflowCode,
  NativeConnection,
  Worker,
  type InjectedSinks,
  type WorkerDeploymentOptions,
} from '@temporalio/worker';
import { createActivities } from '../activities';
import { probeStopQuery, progressQuery, type ProbeStopSinks } from '../common/messages';
import { ProbeStopEvents } from '../activities/http/probeStop';
import { SshPool } from '../activities/ssh/pool';
import { connectionOptions, resolveConnection, type ConnectionFlags } from '../client/connection';

export interface WorkerOptions extends ConnectionFlags {
  /** A prebuilt bundle (tests build one per run); otherwise the workflows are bundled at start. */
  workflowBundlePath?: string;
  maxConcurrentActivities?: number;
  /** SSH handshakes in flight at once (the pool's cap over every node); see SshPoolOptions. */
  maxHandshakes?: number;
  /**
   * Worker Versioning (docs/operator-guide.md, 8b): the Worker Deployment this worker belongs to.
   * Unset, the worker is unversioned, as 0.1.0's were.
   */
  deployment?: string;
  /** The build within the deployment; by default the version plus a hash of the workflow code. */
  buildId?: string;
  /** Make this build the deployment's current version once it polls, so running upgrades move to it. */
  makeCurrent?: boolean;
}

/**
 * A batch of 50 compute-only nodes starts three activities a node at once (the pin, the read and
 * the install): at 100, 50 of them went through the queue, waiting up to 3.9 s; at 150 none
 * waited, though the batch's wall did not move beyond one run's noise (33.3 and 34.6 s;
 * bench/fleet.ts, 100 computes, 7 Dec). A slot is reserved only while free, so this never
 * exceeds the worker's own limit.
 */
export const EAGER_ACTIVITIES_PER_WORKFLOW_TASK = 150;

/** A refusal of the worker's own options, before it connects anywhere. */
export class WorkerOptionsError extends Error {}

/** The project's version, from its package.json: two levels up from dist/worker/, one from worker/. */
function packageVersion(): string {
  for (const dir of [join(__dirname, '..'), join(__dirname, '..', '..')]) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof pkg === 'object' && pkg !== null && 'name' in pkg && pkg.name === 'nova-upgrade' && 'version' in pkg)
      return String(pkg.version);
  }
  return 'unknown';
}

/**
 * The same workflow code gives the same build id on every worker of a team, and any change to it
 * a new one, so a build id never names two different codes.
 */
export function defaultBuildId(workflowCode: string): string {
  return `${packageVersion()}-${createHash('sha256').update(workflowCode).digest('hex').slice(0, 12)}`;
}

/**
 * Auto-upgrade, never pinned: an upgrade runs for hours or days, and a pinned one would keep
 * running the build it started on, fixes included, until it ends. With auto-upgrade it moves to
 * the deployment's current build at its next workflow task, which is what patched() and the
 * replay corpus (test/histories/) make safe.
 */
export function versionedWorker(version: { deploymentName: string; buildId: string }): WorkerDeploymentOptions {
  return { useWorkerVersioning: true, version, defaultVersioningBehavior: 'AUTO_UPGRADE' };
}

function checkVersioning(opts: WorkerOptions): void {
  if (opts.deployment === undefined) {
    if (opts.buildId !== undefined)
      throw new WorkerOptionsError('worker: --build-id names a build of a Worker Deployment; give --deployment too');
    if (opts.makeCurrent)
      throw new WorkerOptionsError(
        'worker: --make-current needs --deployment, the deployment to make this build current in',
      );
    return;
  }
  const name = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
  if (!name.test(opts.deployment))
    throw new WorkerOptionsError(
      `worker: --deployment "${opts.deployment}" must be letters, digits, dots, dashes and underscores`,
    );
  if (opts.buildId !== undefined && !name.test(opts.buildId))
    throw new WorkerOptionsError(
      `worker: --build-id "${opts.buildId}" must be letters, digits, dots, dashes and underscores`,
    );
}

/**
 * Sets this build as its deployment's current version. The server knows a version only once its
 * workers poll, so this waits for that (a few seconds after start, measured: 1 to 3 s on the dev
 * server) and gives up after a minute with the server's own answer.
 */
export async function makeCurrent(
  client: Client,
  namespace: string,
  deploymentName: string,
  buildId: string,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await client.workflowService.setWorkerDeploymentCurrentVersion({
        namespace,
        deploymentName,
        buildId,
        identity: client.options.identity,
      });
      console.log(`build ${buildId} is now the current version of Worker Deployment "${deploymentName}"`);
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(
          `could not make build ${buildId} current in Worker Deployment "${deploymentName}": ${err instanceof Error ? err.message : String(err)}`,
        );
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

export async function runWorker(opts: WorkerOptions = {}): Promise<void> {
  checkVersioning(opts);
  const h = opts.maxHandshakes;
  if (h !== undefined && !(Number.isInteger(h) && h >= 1 && h <= 256))
    throw new WorkerOptionsError(`worker: --max-handshakes must be a whole number from 1 to 256, not "${String(h)}"`);
  const conn = resolveConnection(opts);
  // Versioned, the build id is taken from the code this worker runs, so the code is bundled first.
  const workflowCode =
    opts.deployment === undefined
      ? undefined
      : opts.workflowBundlePath
        ? readFileSync(opts.workflowBundlePath, 'utf8')
        : (await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') })).code;
  const version =
    opts.deployment === undefined || workflowCode === undefined
      ? undefined
      : { deploymentName: opts.deployment, buildId: opts.buildId ?? defaultBuildId(workflowCode) };
  const connection = await NativeConnection.connect(connectionOptions(conn));
  const pool = new SshPool(h === undefined ? {} : { maxHandshakes: h });
  const clientConnection = await Connection.connect(connectionOptions(conn));
  const workflowClient = new Client({ connection: clientConnection, namespace: conn.namespace });
  const probeStopEvents = new ProbeStopEvents();
  const sinks: InjectedSinks<ProbeStopSinks> = {
    probeStop: { requested: { fn: (info) => probeStopEvents.request(info.workflowId, info.runId) } },
  };
  const worker = await Worker.create({
    connection,
    namespace: conn.namespace,
    taskQueue: conn.taskQueue,
    ...(workflowCode !== undefined
      ? { workflowBundle: { code: workflowCode } }
      : opts.workflowBundlePath
        ? { workflowBundle: { codePath: opts.workflowBundlePath } }
        : { workflowsPath: require.resolve('../workflows') }),
    ...(version ? { workerDeploymentOptions: versionedWorker(version) } : {}),
    sinks,
    activities: createActivities({
      runner: pool,
      probeStopEvents,
      // The probe asks its workflow's progress whether the window's steps are done.
      // The one-boolean query; a workflow on code from before it answers only the progress.
      probeStopRequested: async (workflowId) => {
        const h = workflowClient.workflow.getHandle(workflowId);
        try {
          return await h.query(probeStopQuery);
        } catch (err) {
          if (!/probeStop/.test(err instanceof Error ? err.message : String(err))) throw err;
          return (await h.query(progressQuery)).probeStopRequested === true;
        }
      },
    }),
    // SSH commands mostly wait on remote hosts, so many can run at once on two cores.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivities ?? 200,
    // A compute batch's workflow task schedules a whole batch's activities at once (50 reads
    // and 50 installs). With the SDK's defaults (3 eager, 10 pollers) the rest went through the
    // task queue's backlog: on the scale lab 86 waited at once for a worker with 145 slots free,
    // up to 6.4 s (bench/fleet.ts, 100 computes, its batch profile). Eager ones start in the
    // workflow task's own answer; autoscaled pollers take a burst's remainder.
    maxEagerActivityReservationsPerWorkflowTask: EAGER_ACTIVITIES_PER_WORKFLOW_TASK,
    activityTaskPollerBehavior: { type: 'autoscaling', minimum: 1, initial: 5, maximum: 100 },
    shutdownGraceTime: '10s',
    // Cancellation reaches an activity only with a heartbeat the server sees; the default
    // throttle (0.8 × heartbeat timeout) would let the VIP probe run 24 s past its stop.
    maxHeartbeatThrottleInterval: '2s',
  });
  const stop = () => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.log(
    `worker polling task queue "${conn.taskQueue}" on ${conn.address} (namespace ${conn.namespace})` +
      (version ? `, Worker Deployment "${version.deploymentName}" build ${version.buildId}` : ', unversioned'),
  );
  try {
    const running = worker.run();
    if (version && opts.makeCurrent)
      await makeCurrent(workflowClient, conn.namespace, version.deploymentName, version.buildId).catch(
        async (err: unknown) => {
          worker.shutdown();
          await running.catch(() => undefined);
          throw err;
        },
      );
    await running;
  } finally {
    await pool.close();
    await clientConnection.close();
    await connection.close();
  }
}

/** Worker Versioning from the environment, for the compose file's worker and other containers. */
export function versioningFromEnv(
  env: NodeJS.ProcessEnv,
): Pick<WorkerOptions, 'deployment' | 'buildId' | 'makeCurrent'> {
  return {
    ...(env.NOVA_UPGRADE_DEPLOYMENT ? { deployment: env.NOVA_UPGRADE_DEPLOYMENT } : {}),
    ...(env.NOVA_UPGRADE_BUILD_ID ? { buildId: env.NOVA_UPGRADE_BUILD_ID } : {}),
    ...(env.NOVA_UPGRADE_MAKE_CURRENT === 'true' ? { makeCurrent: true } : {}),
  };
}

if (require.main === module) {
  runWorker({
    ...(process.env.NOVA_UPGRADE_WORKFLOW_BUNDLE
      ? { workflowBundlePath: process.env.NOVA_UPGRADE_WORKFLOW_BUNDLE }
      : {}),
    ...versioningFromEnv(process.env),
  }).catch((err: unknown) => {
    console.error(`worker stopped: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
