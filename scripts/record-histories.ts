// Records the histories of finished upgrades (and their compute-batch children) into
// test/histories/, for the replay test that guards running upgrades against incompatible
// workflow changes. Usage: npx tsx scripts/record-histories.ts --address HOST:PORT WORKFLOW_ID...
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

async function main(argv: string[]): Promise<void> {
  const i = argv.indexOf('--address');
  const address = i >= 0 ? argv.splice(i, 2)[1]! : (process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233');
  const out = join(__dirname, '..', 'test', 'histories');
  mkdirSync(out, { recursive: true });
  const client = new Client({ connection: await Connection.connect({ address }) });
  for (const id of argv) {
    const ids = [id];
    for await (const child of client.workflow.list({ query: `WorkflowId STARTS_WITH '${id}/'` })) ids.push(child.workflowId);
    for (const wid of ids) {
      const history = await client.workflow.getHandle(wid).fetchHistory();
      const file = join(out, `${wid.replace(/[^A-Za-z0-9_.-]+/g, '_')}.json`);
      writeFileSync(file, historyToJSON(history));
      process.stdout.write(`${file}: ${history.events?.length ?? 0} events\n`);
    }
  }
  await client.connection.close();
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
