// `nova-upgrade lb setup -i inventory.yaml [--dry-run]`: the seed's HAProxy + keepalived setup.
// The real run is the setupLoadBalancers workflow; --dry-run reads each LB node over SSH and
// prints what the run would change there, changing nothing.
import { Command } from 'commander';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { loadInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { createLbSetupActivities } from '../activities/lb/activities';
import { lbNodeJobs, type LbNodeJob } from '../common/lbJobs';
import { LoadBalancerSetupError } from '../common/lbRender';
import { SshPool } from '../activities/ssh/pool';
import {
  lbSetupProgressQuery,
  lbSetupWorkflowId,
  setupLoadBalancers,
  type LbSetupInput,
  type LbSetupResult,
} from '../workflows/setupLoadBalancers';
import { connectClient, resolveConnection, type ConnectionFlags } from './connection';
import { CliError, operatorName } from './upgrades';

type Print = (text: string) => void;

const out: Print = (text) => process.stdout.write(`${text}\n`);

function jobsOf(inv: Inventory): LbNodeJob[] {
  try {
    return lbNodeJobs(inv);
  } catch (err) {
    if (err instanceof LoadBalancerSetupError)
      throw new CliError(`${err.message}. Nothing was started and no host was contacted.`, 2);
    throw err;
  }
}

/** Reads every LB node (never writes) and prints unified diffs; unreachable nodes get the full files. */
export async function dryRun(inv: Inventory, print: Print = out): Promise<void> {
  const jobs = jobsOf(inv);
  const pool = new SshPool();
  const acts = createLbSetupActivities({ runner: pool });
  try {
    for (const job of jobs) {
      const member = inv.loadBalancer!.members.find((m) => m.node === job.node)!;
      print(
        `\n== ${job.node} (keepalived priority ${member.priority}, ${job.target.username}@${job.target.host}:${job.target.port})`,
      );
      try {
        const d = await acts.diffLoadBalancerNode(job);
        for (const f of d.files) {
          if (f.state === 'same')
            print(`${f.path}: as rendered${f.reloadPending ? ` (but ${f.kind} has not loaded it yet)` : ''}`);
          else print(f.diff.trimEnd());
        }
        print(
          `net.ipv4.ip_nonlocal_bind is ${d.nonlocalBind} now${d.nonlocalBind === '1' ? '' : '; the run sets it to 1'}`,
        );
        print(d.changes ? `would change: ${d.summary.replace(`${job.node}: `, '')}` : 'nothing to change on this node');
      } catch (err) {
        print(
          `could not read ${job.node} over SSH (${err instanceof Error ? err.message : String(err)}); the rendered files, not compared:`,
        );
        for (const f of job.files) print(`--- ${f.path} (rendered)\n${f.content}`);
      }
      print(`would check with:  ${job.commands.checkConfig}`);
      print(`would reload with: ${job.commands.reloadHaproxy}   (only if haproxy.cfg changed)`);
      print(`would restart:     ${job.commands.restartKeepalived}   (only if keepalived.conf changed)`);
    }
    print('\nDry run: nothing was changed on any node.');
  } finally {
    await pool.close();
  }
}

async function follow(client: Client, workflowId: string, print: Print): Promise<LbSetupResult> {
  const handle = client.workflow.getHandle(workflowId);
  const seen = new Map<string, string>();
  let done = false;
  const result = handle.result().finally(() => (done = true)) as Promise<LbSetupResult>;
  while (!done) {
    try {
      const p = await handle.query(lbSetupProgressQuery);
      for (const s of p.steps) {
        const line =
          s.status === 'held'
            ? `HELD    ${s.title}: ${s.error}\n        ${p.pendingDecision?.commands.join('\n        ') ?? ''}`
            : `${s.status.padEnd(7)} ${s.title}${s.summary ? ` — ${s.summary}` : ''}`;
        if (s.status !== 'pending' && seen.get(s.id) !== line) {
          seen.set(s.id, line);
          print(line);
        }
      }
    } catch {
      // No worker yet, or the run just ended: the result tells.
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
  return result;
}

export async function runSetup(
  inv: Inventory,
  flags: ConnectionFlags & { workflowId?: string },
  print: Print = out,
): Promise<LbSetupResult> {
  jobsOf(inv);
  const conn = resolveConnection(flags);
  const client = await connectClient(conn);
  const workflowId = flags.workflowId ?? lbSetupWorkflowId(inv.cloud);
  const input: LbSetupInput = { inventory: inv, startedBy: operatorName() };
  try {
    await client.workflow.start(setupLoadBalancers, {
      taskQueue: conn.taskQueue,
      workflowId,
      args: [input],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      throw new CliError(`an LB setup of ${inv.cloud} is already running as ${workflowId}`);
    throw err;
  }
  print(
    `started ${workflowId}: HAProxy + keepalived on ${inv.loadBalancer!.members.map((m) => m.node).join(', ')}, one node at a time`,
  );
  const r = await follow(client, workflowId, print);
  print(r.summary);
  return r;
}

export function lbSetupCommand(withConnection: (cmd: Command) => Command = (cmd) => cmd): Command {
  const lb = new Command('lb').description('the HAProxy + keepalived pair in front of nova-api');
  withConnection(lb.command('setup'))
    .description(
      "render haproxy.cfg and keepalived.conf from the inventory and install them on every LB node, as the seed's environment section does",
    )
    .requiredOption('-i, --inventory <file>', 'inventory YAML (with a loadBalancer section)')
    .option('--dry-run', 'read each LB node over SSH, print the diffs and change nothing')
    .option('--workflow-id <id>', 'override the id derived from the cloud name')
    .action(async (o: ConnectionFlags & { inventory: string; dryRun?: boolean; workflowId?: string }) => {
      const inv = loadInventory(o.inventory);
      if (o.dryRun) return dryRun(inv);
      const r = await runSetup(inv, o);
      if (r.status !== 'completed') throw new CliError(`LB setup of ${inv.cloud} ${r.status}`);
    });
  return lb;
}
