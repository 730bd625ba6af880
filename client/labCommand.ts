// `nova-upgrade lab up|down|status|demo`: the built-in lab from a shell.
import { Command } from 'commander';
import { join } from 'node:path';
import { defaultStateDir } from './paths';
import { stopDevServer } from './devServer';
import { stopWorkerProcess } from '../worker/process';
import { runLabDemo, summaryTable } from './labDemo';
import { DEFAULT_STATE_DIR, labDown, labStatus, labUp } from '../lab/lab';
import { DEFAULT_FLEET_TIMES, fleetSshdCount } from '../lab/fleet';

export function labCommand(): Command {
  const program = new Command('lab').description(
    'the local nova-upgrade lab: a two-node devstack stand-in behind HAProxy',
  );
  program
    .command('up')
    .option('--state-dir <dir>', 'where the lab lives', DEFAULT_STATE_DIR)
    .option('--subnet <a.b.c>', 'loopback subnet for the nodes and the VIP', '127.0.1')
    .option('--api-nodes <n>', 'nodes running nova-api (the first is the controller)', '2')
    .option('--compute-only-nodes <n>', 'extra nodes running only nova-compute', '0')
    .option('--lb-nodes <n>', 'HAProxy instances (keepalived is not simulated)', '1')
    .option(
      '--nova <kind>',
      'standin (the fast lab of stand-ins), real (nova, placement and keystone from their releases, on MariaDB and RabbitMQ) or kolla (the stand-ins in podman containers, as kolla-ansible runs them)',
      'standin',
    )
    .option('--from <version>', 'release installed at first (default 30.0.0; real: 33.0.2)')
    .option('--to <version>', 'release the inventory upgrades to (default 31.0.0; real: 34.0.0)')
    .option('--ssh-port <port>', 'port every node sshd listens on', '2222')
    .option(
      '--cells <n>',
      "real lab only: 1 (cell1) or 2 (cell1 and cell2: cell2's database, conductor and a node cell2-compute1 whose nova-compute is in it)",
      '1',
    )
    .option(
      '--virtual-computes <n>',
      'the scale lab: this many virtual computes (shell stand-ins, 16 addresses per sshd) on the /24s after the subnet',
      '0',
    )
    .option(
      '--fleet-times <ms>',
      "the virtual computes' install,stop,start,heartbeat times in ms",
      `${DEFAULT_FLEET_TIMES.installMs},${DEFAULT_FLEET_TIMES.stopMs},${DEFAULT_FLEET_TIMES.startMs},${DEFAULT_FLEET_TIMES.heartbeatMs}`,
    )
    .action(async (o: Record<string, string>) => {
      if (o.nova !== 'standin' && o.nova !== 'real' && o.nova !== 'kolla')
        throw new Error(`--nova must be standin, real or kolla, not "${o.nova}"`);
      const virtualComputes = Number(o.virtualComputes);
      if (!Number.isInteger(virtualComputes) || virtualComputes < 0)
        throw new Error(`--virtual-computes must be a whole number, not "${o.virtualComputes}"`);
      const times = (o.fleetTimes ?? '').split(',').map(Number);
      if (times.length !== 4 || times.some((t) => !Number.isFinite(t) || t < 0))
        throw new Error(`--fleet-times must be four times in ms (install,stop,start,heartbeat), not "${o.fleetTimes}"`);
      const [installMs, stopMs, startMs, heartbeatMs] = times as [number, number, number, number];
      const cells = Number(o.cells);
      if (cells !== 1 && cells !== 2) throw new Error(`--cells must be 1 or 2, not "${o.cells}"`);
      const info = await labUp({
        nova: o.nova,
        stateDir: o.stateDir,
        subnet: o.subnet,
        apiNodes: Number(o.apiNodes),
        computeOnlyNodes: Number(o.computeOnlyNodes),
        lbNodes: Number(o.lbNodes),
        ...(o.from ? { fromVersion: o.from } : {}),
        ...(o.to ? { toVersion: o.to } : {}),
        sshPort: Number(o.sshPort),
        virtualComputes,
        fleetTimes: { installMs, stopMs, startMs, heartbeatMs },
        ...(cells > 1 ? { cells } : {}),
      });
      process.stdout.write(
        `lab up in ${info.upMs} ms\n  inventory: ${info.inventoryPath}\n  VIP:       ${info.vipUrl}\n`,
      );
      for (const n of info.nodes.filter((x) => !x.virtual))
        process.stdout.write(`  ${n.name.padEnd(12)} ${n.address}:${n.sshPort}  ${n.roles.join(',')}\n`);
      const fleet = info.nodes.filter((x) => x.virtual);
      if (fleet.length)
        process.stdout.write(
          `  ${fleet.length} virtual computes vc1..vc${fleet.length}: ${fleet[0]!.address} to ${fleet.at(-1)!.address}, ${fleetSshdCount(fleet.length)} sshds\n`,
        );
      process.stdout.write(
        `  ssh: ssh -i ${info.privateKeyPath} -o UserKnownHostsFile=${info.knownHostsPath} -p ${info.options.sshPort} root@${info.nodes[0]!.address}\n`,
      );
    });
  program
    .command('down')
    .option('--state-dir <dir>', 'where the lab lives', DEFAULT_STATE_DIR)
    .action(async (o: { stateDir: string }) => {
      await labDown(o.stateDir);
      process.stdout.write('lab down\n');
    });
  program
    .command('status')
    .option('--state-dir <dir>', 'where the lab lives', DEFAULT_STATE_DIR)
    .option('--json', 'machine-readable')
    .action((o: { stateDir: string; json?: boolean }) => {
      const s = labStatus(o.stateDir);
      if (o.json) return void process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      process.stdout.write(`lab ${s.up ? 'up' : 'not (fully) up'}: ${s.stateDir}\n`);
      for (const n of s.nodes) {
        process.stdout.write(`  ${n.name} ${n.address} code ${n.codeVersion} sshd ${n.sshd ?? 'down'}\n`);
        for (const u of n.services)
          process.stdout.write(
            `    ${u.unit.padEnd(24)} ${u.activeState.padEnd(8)} ${u.pid || ''} ${u.version ?? ''}\n`,
          );
      }
      for (const h of s.haproxy) process.stdout.write(`  haproxy on ${h.node} ${h.frontend} ${h.pid ?? 'down'}\n`);
    });

  program
    .command('demo')
    .description(
      'bring up Temporal, a fresh lab and a worker, run the whole upgrade with every gate auto-approved, report what API clients saw',
    )
    .option('--state-dir <dir>', 'where Temporal, the lab and the worker keep their state', defaultStateDir())
    .option(
      '--mode <mode>',
      "monotonic (switch all traffic to new code at once; the stand-in lab's default) or rolling (the seed's order; the real lab's default, what test/realLab.test.ts proves on it)",
    )
    .option(
      '--nova <kind>',
      'standin (the lab of stand-ins, up in seconds) or real (nova, placement and keystone from their releases on MariaDB and RabbitMQ: nova 33.0.2 → 34.0.0, real tempest, an authenticated probe)',
      'standin',
    )
    .option('--subnet <a.b.c>', 'loopback subnet for the lab (default 127.0.1)')
    .option('--port <port>', "the Temporal dev server's port", '7233')
    .option('--ui-port <port>', "the Temporal Web UI's port", '8233')
    .option('--json', 'print the summary as JSON')
    .action(
      async (o: {
        stateDir: string;
        mode?: string;
        nova: string;
        subnet?: string;
        port: string;
        uiPort: string;
        json?: boolean;
      }) => {
        if (o.nova !== 'standin' && o.nova !== 'real')
          throw new Error(`--nova must be standin or real, not "${o.nova}"`);
        const mode = o.mode ?? (o.nova === 'real' ? 'rolling' : 'monotonic');
        if (mode !== 'rolling' && mode !== 'monotonic')
          throw new Error(`--mode must be rolling or monotonic, not "${mode}"`);
        const [port, uiPort] = [Number(o.port), Number(o.uiPort)];
        if (!Number.isInteger(port) || port < 1 || port > 65535)
          throw new Error(`--port must be a TCP port, not "${o.port}"`);
        if (!Number.isInteger(uiPort) || uiPort < 1 || uiPort > 65535)
          throw new Error(`--ui-port must be a TCP port, not "${o.uiPort}"`);
        const log = o.json
          ? (l: string) => process.stderr.write(`${l}\n`)
          : (l: string) => process.stdout.write(`${l}\n`);
        const s = await runLabDemo({
          stateDir: o.stateDir,
          mode,
          nova: o.nova,
          port,
          uiPort,
          ...(o.subnet ? { subnet: o.subnet } : {}),
          out: log,
        });
        if (o.json) {
          process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        } else {
          log('');
          log('Summary');
          log(summaryTable(s));
          log('');
          log(`Web UI: ${s.uiUrl}`);
          log('Temporal, the lab and the worker are still running for you to inspect. Stop them all with:');
          log(`  ./bin/nova-upgrade lab stop-all --state-dir ${o.stateDir}`);
        }
        if (s.status !== 'completed' || s.failedRequests > 0) process.exitCode = 1;
      },
    );
  program
    .command('stop-all')
    .description('stop the lab, the worker and the Temporal dev server that "lab demo" started')
    .option('--state-dir <dir>', 'as given to lab demo', defaultStateDir())
    .action(async (o: { stateDir: string }) => {
      await stopWorkerProcess(o.stateDir);
      await labDown(join(o.stateDir, 'lab'));
      await stopDevServer(join(o.stateDir, 'temporal'));
      process.stdout.write('worker, lab and Temporal dev server stopped\n');
    });
  return program;
}
