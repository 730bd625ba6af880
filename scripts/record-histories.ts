// Records the histories of finished upgrades (and their compute-batch children) into
// test/histories/, for the replay test that guards running upgrades against incompatible
// workflow changes. Usage: npx tsx scripts/record-histories.ts --address HOST:PORT WORKFLOW_ID[@SINCE_ISO]...
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

async function main(argv: string[]): Promise<void> {
  const i = argv.indexOf('--address');
  const address = i >= 0 ? argv.splice(i, 2)[1]! : (process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233');
  const out = join(__dirname, '..', 'test', 'histories');
  mkdirSync(out, { recursive: true });
  const client = new Client({ connection: await Connection.connect({ address }) });
  for (const id of argv) {
    // Every run of that id the server still has, each with the children it started.
    const runs: { workflowId: string; runId: string }[] = [];
    const [wanted, since] = id.split('@');
    const after = since ? ` AND StartTime >= '${since}'` : '';
    for await (const parent of client.workflow.list({
      query: `WorkflowId = '${wanted}' AND ExecutionStatus = 'Completed'${after}`,
    })) {
      runs.push({ workflowId: wanted!, runId: parent.runId });
      const until = parent.closeTime ? ` AND StartTime <= '${parent.closeTime.toISOString()}'` : '';
      for await (const child of client.workflow.list({
        query: `WorkflowId STARTS_WITH '${wanted}/' AND StartTime >= '${parent.startTime.toISOString()}'${until}`,
      })) {
        runs.push({ workflowId: child.workflowId, runId: child.runId });
      }
    }
    for (const { workflowId: wid, runId } of runs) {
      const history = await client.workflow.getHandle(wid, runId).fetchHistory();
      // Binary protobuf: the SDK's JSON history helpers fail here ("type must be a Type")
      // because npm installs two copies of protobufjs side by side.
      // The workflow id must survive in the name: the replayer needs it (child ids derive from it).
      const file = join(out, `${encodeURIComponent(wid)}~${runId}.binpb`);
      writeFileSync(file, temporal.api.history.v1.History.encode(history).finish());
      process.stdout.write(`${file}: ${history.events?.length ?? 0} events\n`);
    }
  }
  await client.connection.close();
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
