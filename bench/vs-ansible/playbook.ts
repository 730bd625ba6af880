// The project's own Ansible playbook for the same runbook, generated from the plan that
// `start --dry-run` prints (plannedSteps), step by step in its order, so the two cannot drift:
// a runbook line this file does not know how to translate stops the bench with its id.
//
// What the playbook does as the ops do, and what it does as a plain Ansible operator would:
// - every node command of the dry run runs as written, on its node, over ssh (pipelining,
//   ControlPersist: ansible.cfg below);
// - HAProxy: community.general is not in ansible-core and Ansible Galaxy is out of reach here,
//   so community.general.haproxy's drain/enable with `wait` is done as that module does it: the
//   runtime command through socat on the LB node, then `show stat` every 1 s until the server
//   has no sessions (drain) or reads UP (enable), retried as the module's wait_retries;
// - the endpoint's id, the [upgrade_levels] pin and online migrations "until done" (nova-manage
//   exits 1 while there is more to do) are shell, as the dry run leaves them to the tool;
// - tempest beside the API restarts is an async task awaited after the last server is UP;
// - nothing records weights (the module enables to the configured weight) and the VIP probe is
//   the bench's own, for both.
import type { Inventory } from '../../inventory/schema';
import type { LbTarget } from '../../common/haproxy';
import { apiConfigOf, cmd, lbTargets } from '../../common/topology';
import { SERVICE_ROWS_SCRIPT } from '../../common/serviceRowsScript';
import { plannedSteps } from '../../workflows/runbook/index';

type Task = Record<string, unknown>;

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function lbShell(lb: LbTarget, runtime: string): string {
  const s = lb.socket;
  const sock = s.via === 'tcp' ? `tcp:${s.host}:${s.port}` : `unix-connect:${s.path}`;
  const sudo = s.via === 'ssh' && s.sudo ? 'sudo -n ' : '';
  return `echo ${sq(runtime)} | ${sudo}socat stdio ${sq(sock)}`;
}

function onLbs(inv: Inventory, name: string, runtime: string): Task[] {
  return lbTargets(inv).map((lb) => ({
    name: `${name} (${lb.node})`,
    delegate_to: lb.node,
    'ansible.builtin.shell': lbShell(lb, runtime),
  }));
}

/** community.general.haproxy's wait: `show stat` every 1 s until the server's row passes. */
function waitOnLbs(inv: Inventory, name: string, server: string, awk: string, expect: string): Task[] {
  const backend = inv.haproxy.backend;
  return lbTargets(inv).map((lb) => ({
    name: `${name} (${lb.node})`,
    delegate_to: lb.node,
    'ansible.builtin.shell': `${lbShell(lb, `show stat ${backend} 4 -1`)} | awk -F, ${sq(`$1=="${backend}" && $2=="${server}" {print ${awk}}`)}`,
    register: 'r',
    until: `r.stdout == ${JSON.stringify(expect)}`,
    retries: 30,
    delay: 1,
    changed_when: false,
  }));
}

function sh(name: string, node: string, command: string, extra: Task = {}): Task {
  return { name, delegate_to: node, 'ansible.builtin.shell': command, ...extra };
}

function get(name: string, url: string): Task {
  return {
    name,
    delegate_to: 'localhost',
    'ansible.builtin.uri': { url, status_code: 200 },
    register: 'r',
    until: 'r.status == 200',
    retries: 30,
    delay: 1,
  };
}

/** The tasks of one dry-run step; throws on a step this bench does not know. */
function tasksFor(inv: Inventory, step: ReturnType<typeof plannedSteps>[number]): Task[] {
  const [kind, a] = step.id.split(':');
  const lit = () => step.commands.map((c, i) => sh(`${step.id} [${i + 1}]`, c.node, c.command));
  switch (kind) {
    case 'check-node-access':
    case 'check-load-balancers':
    case 'tempest-before':
    case 'tempest-after-computes':
    case 'install-code':
    case 'api-db-sync':
    case 'db-sync':
    case 'db-sync-cells':
    case 'upgrade-placement':
    case 'upgrade-check':
    case 'restart':
    // One task per command, one after another: Ansible restarts a host's services in a loop.
    case 'restart-conductors':
    case 'restart-control-services':
    case 'compute-batch':
    case 'hup':
    case 'hup-services':
    case 'hup-computes':
    case 'hup-all':
    case 'check-cells':
    case 'check-orphans':
      return lit();
    case 'point-endpoint-at-vip': {
      const [list, set] = step.commands;
      const id = `$(${list!.command} | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ID"])')`;
      return [sh(step.id, list!.node, set!.command.replace(`'<id>'`, `"${id}"`))];
    }
    case 'change-compute-endpoint': {
      // The endpoint of each named interface in the inventory's region (or the only one), as the tool picks it.
      const [list, ...sets] = step.commands;
      const region = inv.openstack.region;
      return sets.map((set, i) => {
        const iface = /<id of the (\S+) compute endpoint/.exec(set.command)?.[1] ?? 'public';
        const pick = `[e["ID"] for e in json.load(sys.stdin) if e["Interface"] == "${iface}"${region ? ` and e["Region"] == "${region}"` : ''}][0]`;
        const id = `$(${list!.command} | python3 -c 'import json,sys; print(${pick})')`;
        return sh(`${step.id} [${i + 1}]`, set.node, set.command.replace(/'<id of [^']*>'/, `"${id}"`));
      });
    }
    case 'check-service-versions':
      // The dry run shows the read-only script by name; the playbook runs the script itself.
      return [
        sh(
          step.id,
          step.commands[0]!.node,
          cmd(inv, 'serviceVersions', { script: SERVICE_ROWS_SCRIPT, apiConfig: apiConfigOf(inv) }),
        ),
      ];
    case 'check-api-servers':
      return step.commands.map((c, i) => get(`${step.id} [${i + 1}]`, c.command.replace(/^GET /, '')));
    case 'check-api':
    case 'check-api-version': {
      const n = inv.nodes.find((x) => x.name === a)!;
      return [get(step.id, `${n.api!.url}/`)];
    }
    case 'pin-compute-rpc':
      // Each file's read names it; its write is shown by name only, and played here by sed.
      return step.commands
        .filter((c) => /^(sudo )?cat /.test(c.command))
        .map((c, i) => {
          const f = c.command.replace(/^(sudo )?cat /, '');
          return sh(
            `${step.id} [${i + 1}]`,
            c.node,
            `f=${f}; if grep -q '^\\[upgrade_levels\\]' "$f"; then grep -q '^compute *= *auto' "$f" || sed -i '/^\\[upgrade_levels\\]/a compute = auto' "$f"; else printf '\\n[upgrade_levels]\\ncompute = auto\\n' >> "$f"; fi`,
          );
        });
    case 'record-weights':
    case 'vip-probe-result':
      return [];
    case 'tempest-during-api':
      return [
        {
          ...sh(step.id, step.commands[0]!.node, step.commands[0]!.command),
          async: inv.timeouts.tempestSeconds,
          poll: 0,
          register: 'tempest_during_api',
        },
      ];
    case 'drain':
      return onLbs(inv, step.id, `set server ${inv.haproxy.backend}/${a} state drain`);
    case 'wait-sessions':
      return waitOnLbs(inv, step.id, a!, '$5+$3', '0');
    case 'enable':
      return onLbs(inv, step.id, `set server ${inv.haproxy.backend}/${a} state ready`);
    case 'wait-up':
      return waitOnLbs(inv, step.id, a!, '$18', 'UP');
    case 'switch-over': {
      // "enable X and drain Y, Z in one exchange": the title names them.
      const m = /^enable (\S+) and drain (.+) in one exchange$/.exec(step.title);
      if (!m) throw new Error(`switch-over title changed: ${step.title}`);
      const drains = m[2]!.split(', ').map((s) => `set server ${inv.haproxy.backend}/${s} state drain`);
      return onLbs(inv, step.id, [`set server ${inv.haproxy.backend}/${m[1]} state ready`, ...drains].join(';'));
    }
    case 'online-migrations':
      return step.commands.map((c, i) =>
        sh(
          `${step.id} [${i + 1}]`,
          c.node,
          `i=0; while :; do ${c.command}; rc=$?; [ "$rc" -eq 1 ] && [ "$i" -lt 50 ] || break; i=$((i + 1)); done; exit "$rc"`,
        ),
      );
    default:
      throw new Error(`bench/vs-ansible does not know how to play the runbook line "${step.id}" (${step.title})`);
  }
}

/** The playbook (JSON is YAML) and the step ids it covers, in the dry run's order. */
export function playbookFor(inv: Inventory): { text: string; steps: string[] } {
  const steps = plannedSteps(inv);
  const tasks: Task[] = [];
  let awaitedTempest = false;
  for (const s of steps) {
    tasks.push(...tasksFor(inv, s));
    // The beside tempest is taken after the last API server is UP, as the workflow does.
    const last = [...steps].reverse().find((x) => x.id.startsWith('wait-up:'));
    if (s.id === last?.id && steps.some((x) => x.id === 'tempest-during-api')) {
      awaitedTempest = true;
      tasks.push({
        name: 'tempest-during-api (result)',
        delegate_to: steps.find((x) => x.id === 'tempest-during-api')!.commands[0]!.node,
        'ansible.builtin.async_status': { jid: '{{ tempest_during_api.ansible_job_id }}' },
        register: 'job',
        until: 'job.finished',
        retries: inv.timeouts.tempestSeconds,
        delay: 1,
      });
    }
  }
  if (steps.some((x) => x.id === 'tempest-during-api') && !awaitedTempest)
    throw new Error('tempest-during-api has no wait-up after it');
  const play = [
    { name: `nova ${inv.release.from} -> ${inv.release.to}`, hosts: 'localhost', gather_facts: false, tasks },
  ];
  return { text: `${JSON.stringify(play, null, 1)}\n`, steps: steps.map((s) => s.id) };
}
