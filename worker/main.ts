// The worker: runs the workflows and every remote effect. One SSH pool serves all activities
// in this process, so connections to a node are shared across concurrent steps.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { probeStopQuery, progressQuery } from '../common/messages';
import { SshPool } from '../activities/ssh/pool';
import { connectionOptions, resolveConnection, type ConnectionFlags } from '../client/connection';

export interface WorkerOptions extends ConnectionFlags {
  /** A prebuilt bundle (tests build one per run); otherwise the workflows are bundled at start. */
  workflowBundlePath?: string;
  maxConcurrentActivities?: number;
}

export async function runWorker(opts: WorkerOptions = {}): Promise<void> {
  const conn = resolveConnection(opts);
  const connection = await NativeConnection.connect(connectionOptions(conn));
  const pool = new SshPool();
  const clientConnection = await Connection.connect(connectionOptions(conn));
  const workflowClient = new Client({ connection: clientConnection, namespace: conn.namespace });
  const worker = await Worker.create({
    connection,
    namespace: conn.namespace,
    taskQueue: conn.taskQueue,
    ...(opts.workflowBundlePath
      ? { workflowBundle: { codePath: opts.workflowBundlePath } }
      : { workflowsPath: require.resolve('../workflows') }),
    activities: createActivities({
      runner: pool,
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
    shutdownGraceTime: '10s',
    // Cancellation reaches an activity only with a heartbeat the server sees; the default
    // throttle (0.8 × heartbeat timeout) would let the VIP probe run 24 s past its stop.
    maxHeartbeatThrottleInterval: '2s',
  });
  const stop = () => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.log(`worker polling task queue "${conn.taskQueue}" on ${conn.address} (namespace ${conn.namespace})`);
  try {
    await worker.run();
  } finally {
    await pool.close();
    await clientConnection.close();
    await connection.close();
  }
}

if (require.main === module) {
  runWorker({
    ...(process.env.NOVA_UPGRADE_WORKFLOW_BUNDLE
      ? { workflowBundlePath: process.env.NOVA_UPGRADE_WORKFLOW_BUNDLE }
      : {}),
  }).catch((err: unknown) => {
    console.error(`worker stopped: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
