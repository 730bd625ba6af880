// nova-upgrade: the operator's entry point. Every failure ends in one sentence and a non-zero
// exit code; stack traces are for bugs, shown only with NOVA_UPGRADE_DEBUG=1.
import { Command, InvalidArgumentError, Option } from 'commander';
import { InventoryError, loadInventory } from '../inventory/load';
import { isPhase, PHASES, type Phase } from '../common/messages';
import { dryRunLines } from './dryRun';
import { UpgradePhase, UpgradeStatus } from '../common/searchAttributes';
import { connectClient, ConnectionError, resolveConnection, type ConnectionFlags } from './connection';
import { changedLines, liveLines, progressTable, watchView } from './render';
import { auditTable, commandAudit } from './history';
import {
  approvePhase,
  CliError,
  decide,
  setTemplates,
  requestAbort,
  signalApproval,
  signalDecision,
  startUpgrade,
  viewUpgrade,
} from './upgrades';
import { watchUpgrade } from './watch';
import { labCommand } from './labCommand';
import { serverCommand } from './serverCommand';
import { lbSetupCommand } from './lbSetup';
import { inventoryCommand } from './inventoryCommand';

function phases(value: string): Phase[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.includes('all')) return [...PHASES];
  for (const p of list)
    if (!isPhase(p)) throw new InvalidArgumentError(`unknown phase "${p}"; phases are ${PHASES.join(', ')} (or all)`);
  return list as Phase[];
}

function phase(value: string): Phase {
  if (!isPhase(value)) throw new InvalidArgumentError(`unknown phase "${value}"; phases are ${PHASES.join(', ')}`);
  return value;
}

function withConnection(cmd: Command): Command {
  return cmd
    .option('--address <host:port>', 'Temporal frontend (env TEMPORAL_ADDRESS)')
    .option('--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE)')
    .option('--profile <name>', 'envconfig profile (env TEMPORAL_PROFILE)')
    .option('--tls-cert <path>', 'mTLS client certificate')
    .option('--tls-key <path>', 'mTLS client key')
    .option('--tls-ca <path>', 'CA bundle for the server certificate')
    .option('--tls-server-name <name>', 'server name to verify')
    .option('--api-key-file <path>', 'file holding an API key (Temporal Cloud); env TEMPORAL_API_KEY')
    .option('--task-queue <name>', 'task queue (env NOVA_UPGRADE_TASK_QUEUE)');
}

async function client(flags: ConnectionFlags) {
  const conn = resolveConnection(flags);
  return { conn, client: await connectClient(conn) };
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function buildProgram(): Command {
  const program = new Command('nova-upgrade')
    .description("OpenStack nova's zero-downtime upgrade as a durable Temporal workflow")
    .showHelpAfterError()
    .exitOverride();

  withConnection(program.command('start'))
    .description('start an upgrade from an inventory file')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .option('--workflow-id <id>', 'override the id derived from the cloud name')
    .addOption(
      new Option(
        '--auto-approve <phases>',
        `comma-separated phases whose gate opens by itself (${PHASES.join(', ')}, all)`,
      )
        .argParser(phases)
        .default([]),
    )
    .option('--dry-run', 'print every command, host by host, and change nothing')
    .action(
      async (
        o: ConnectionFlags & { inventory: string; workflowId?: string; autoApprove: Phase[]; dryRun?: boolean },
      ) => {
        const inv = loadInventory(o.inventory);
        if (o.dryRun) {
          for (const line of dryRunLines(inv, o.autoApprove)) print(line);
          return;
        }
        const { conn, client: c } = await client(o);
        const handle = await startUpgrade(c, conn.taskQueue, inv, {
          ...(o.workflowId ? { workflowId: o.workflowId } : {}),
          autoApprove: o.autoApprove,
        });
        print(`started upgrade ${handle.workflowId} (nova ${inv.release.from} → ${inv.release.to} on ${inv.cloud})`);
        print(`  watch:   nova-upgrade watch ${handle.workflowId}`);
        print(`  approve: nova-upgrade approve ${handle.workflowId}`);
      },
    );

  withConnection(program.command('approve <workflowId>'))
    .description("approve the pending phase's gate")
    .option('--phase <phase>', 'the phase you mean (refused if another is pending)', phase)
    .option('--comment <text>', 'recorded with the approval')
    .option(
      '--signal',
      'send a signal instead of an update: works while no worker polls (needs --phase; a refusal becomes a warning in the progress)',
    )
    .action(async (id: string, o: ConnectionFlags & { phase?: Phase; comment?: string; signal?: boolean }) => {
      const { conn, client: c } = await client(o);
      if (o.signal) {
        if (!o.phase)
          throw new CliError(
            'approve --signal needs --phase: without a worker nothing can tell which gate is pending',
            2,
          );
        await signalApproval(c, id, o.phase, o.comment);
        print(
          `sent the approval of ${o.phase} as a signal; the workflow records it when a worker runs it ("status" shows it)`,
        );
        return;
      }
      const rec = await approvePhase(c, conn.taskQueue, id, o.phase, o.comment);
      print(`approved ${rec.phase} as ${rec.approver}`);
    });

  const actionHelp = {
    retry: 'run the held step again',
    skip: 'skip the held step (recorded with the reason)',
    'shutdown-sessions': "close the drained server's remaining sessions, then wait again",
    'delete-records':
      'delete the down service records the held preflight listed as pinning the compute RPC, then read again',
  } as const;
  for (const action of ['retry', 'skip', 'shutdown-sessions', 'delete-records'] as const) {
    const cmd = withConnection(program.command(`${action} <workflowId>`))
      .description(actionHelp[action])
      .option('--step <id>', 'the held step you mean (refused if another is held)')
      .option(
        '--signal',
        'send a signal instead of an update: works while no worker polls (needs --step; a refusal becomes a warning in the progress)',
      );
    if (action === 'skip') cmd.requiredOption('--reason <text>', 'why it is safe to skip');
    cmd.action(async (id: string, o: ConnectionFlags & { step?: string; reason?: string; signal?: boolean }) => {
      const { conn, client: c } = await client(o);
      const input = { action, ...(o.step ? { stepId: o.step } : {}), ...(o.reason ? { reason: o.reason } : {}) };
      if (o.signal) {
        if (!o.step)
          throw new CliError(
            `${action} --signal needs --step: without a worker nothing can tell which step is held`,
            2,
          );
        await signalDecision(c, id, input);
        print(
          `sent ${action} for ${o.step} as a signal; the workflow acts on it when a worker runs it ("status" shows it)`,
        );
        return;
      }
      print(await decide(c, conn.taskQueue, id, input));
    });
  }

  const templates = program
    .command('templates')
    .description('correct the command templates of a held upgrade, without starting over');
  withConnection(templates.command('set <workflowId> <assignments...>'))
    .description(
      'set name=template for each template named (checked as the inventory\'s are); only while a step is held, then "retry" it. Recorded in the history and the progress',
    )
    .option('--reason <text>', 'recorded with the change')
    .action(async (id: string, assignments: string[], o: ConnectionFlags & { reason?: string }) => {
      const values: Record<string, string> = {};
      for (const a of assignments) {
        const eq = a.indexOf('=');
        if (eq <= 0)
          throw new CliError(`"${a}" is not name=template (e.g. cellList='nova-manage cell_v2 list_cells')`, 2);
        values[a.slice(0, eq)] = a.slice(eq + 1);
      }
      const { conn, client: c } = await client(o);
      print(await setTemplates(c, conn.taskQueue, id, values, o.reason));
    });

  withConnection(program.command('abort <workflowId>'))
    .description('stop at the next safe point, leaving no API server drained and no service stopped')
    .option('--reason <text>', 'recorded with the abort')
    .action(async (id: string, o: ConnectionFlags & { reason?: string }) => {
      const { client: c } = await client(o);
      await requestAbort(c, id, o.reason);
      print(`abort requested for ${id}; it stops at the next safe point ("nova-upgrade watch ${id}")`);
    });

  withConnection(program.command('status <workflowId>'))
    .description('phases and steps of an upgrade')
    .option('--json', 'machine-readable')
    .action(async (id: string, o: ConnectionFlags & { json?: boolean }) => {
      const { client: c } = await client(o);
      const view = await viewUpgrade(c, id);
      if (o.json) return print(JSON.stringify(view, null, 2));
      if (view.running) return print(progressTable(view.progress, { width: process.stdout.columns }));
      print(`upgrade ${id} is ${view.status}`);
      if (view.result)
        print(
          view.result.steps
            .map((s) => `  ${s.status.padEnd(10)} ${s.title}${s.alreadyDone ? ' (already done)' : ''}`)
            .join('\n'),
        );
    });

  withConnection(program.command('watch <workflowId>'))
    .description('live progress until the next gate, hold or the end')
    .action(async (id: string, o: ConnectionFlags) => {
      const { client: c } = await client(o);
      await watchUpgrade(c, id, {
        tty: Boolean(process.stdout.isTTY),
        // Each line cut to the terminal's width, read anew at every frame (the window may be resized).
        render: (p) => progressTable(p, { width: process.stdout.columns }),
        changes: changedLines,
        out: print,
        live: { render: (p, live) => watchView(p, live, process.stdout.columns), lines: liveLines },
      });
    });

  withConnection(program.command('history <workflowId>'))
    .description('audit log of every remote command the upgrade ran: node, command, exit code, duration')
    .option('--json', 'machine-readable')
    .action(async (id: string, o: ConnectionFlags & { json?: boolean }) => {
      const { client: c } = await client(o);
      const audit = await commandAudit(c, id);
      print(o.json ? JSON.stringify(audit, null, 2) : auditTable(audit));
    });

  withConnection(program.command('list'))
    .description('upgrades known to this namespace')
    .action(async (o: ConnectionFlags) => {
      const { client: c } = await client(o);
      for await (const wf of c.workflow.list({ query: `WorkflowType = 'novaUpgrade'` })) {
        const sa = wf.typedSearchAttributes;
        print(
          `${wf.workflowId.padEnd(32)} ${wf.status.name.padEnd(11)} ${(sa.get(UpgradePhase) ?? '-').padEnd(15)} ${(sa.get(UpgradeStatus) ?? '-').padEnd(17)} started ${wf.startTime.toISOString()}`,
        );
      }
    });

  program.addCommand(labCommand());
  program.addCommand(serverCommand());
  program.addCommand(lbSetupCommand(withConnection));
  program.addCommand(inventoryCommand());

  withConnection(program.command('worker'))
    .description('run a worker for the upgrade workflows and their activities')
    .option(
      '--deployment <name>',
      'use Worker Versioning, in this Worker Deployment (env NOVA_UPGRADE_DEPLOYMENT); see the operator guide, 8b',
    )
    .option(
      '--build-id <id>',
      'this build within the deployment (default: the version plus a hash of the workflow code)',
    )
    .option('--make-current', "make this build the deployment's current version once it polls")
    .option(
      '--max-handshakes <n>',
      "SSH handshakes in flight at once over every node (default 8, below sshd's MaxStartups); raise it where each node has its own sshd",
    )
    .action(
      async (
        o: ConnectionFlags & { deployment?: string; buildId?: string; makeCurrent?: boolean; maxHandshakes?: string },
      ) => {
        const { runWorker, versioningFromEnv, WorkerOptionsError } = await import('../worker/main');
        const { maxHandshakes, ...rest } = o;
        if (maxHandshakes !== undefined && !/^\d+$/.test(maxHandshakes))
          throw new CliError(
            `worker: --max-handshakes must be a whole number from 1 to 256, not "${maxHandshakes}"; nothing was started`,
            2,
          );
        try {
          await runWorker({
            ...versioningFromEnv(process.env),
            ...rest,
            ...(maxHandshakes === undefined ? {} : { maxHandshakes: Number(maxHandshakes) }),
          });
        } catch (err) {
          throw err instanceof WorkerOptionsError ? new CliError(`${err.message}; nothing was started`, 2) : err;
        }
      },
    );

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return e.exitCode ?? 2;
    if (err instanceof InventoryError) {
      process.stderr.write(`${err.message}\nNothing was started and no host was contacted.\n`);
      return 2;
    }
    if (err instanceof CliError || err instanceof ConnectionError) {
      process.stderr.write(`nova-upgrade: ${err.message}\n`);
      return (err as CliError).exitCode ?? 1;
    }
    process.stderr.write(`nova-upgrade: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.NOVA_UPGRADE_DEBUG) console.error(err);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
