// Compute services during the upgrade: disabled so the scheduler sends no new work to a
// compute being restarted, drained of in-flight tasks, checked to heartbeat on new code,
// and enabled again.
import type { CommandRecord } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';
import { lastLines, outputOf, runRead, toRecord, type NovaDeps, beatingWhile } from './common';
import { backoff, cancellationSignal, heartbeat, mapLimit, nonRetryable, sleep } from '../common';
import {
  isTaskInProgress,
  parseNovaTimestamp,
  parseServerTasks,
  parseServiceList,
  type ComputeServiceRecord,
  type ServerTask,
} from './serviceList';

/**
 * The waits below poll from 250 ms, backing off by half again each time to the inventory's
 * interval: what they wait for is often true within a second. On the quiet default lab a fixed
 * 1 s poll made "reports up on the new code" take 1.28-1.31 s per batch for 0.10 s of reads
 * (bench/steps.ts): the first read came before the restarted compute's first heartbeat, the
 * next a whole interval later. A real service list takes 2-4 s by itself, so there the back-off
 * adds almost no reads.
 */
const FIRST_POLL_MS = 250;

const COMPUTE = 'nova-compute';

export interface SetComputeServicesInput {
  /** The controller, where the openstack CLI runs. */
  target: SshTarget;
  listCommand: string;
  /** nova host names. */
  hosts: string[];
}

export interface DisableComputeServicesInput extends SetComputeServicesInput {
  /** host → rendered computeServiceDisable command. */
  disableCommands: Record<string, string>;
  /** The reason the commands set; with `--long` in listCommand it tells our disables from an operator's. */
  reason?: string;
}

export interface EnableComputeServicesInput extends SetComputeServicesInput {
  /** host → rendered computeServiceEnable command. */
  enableCommands: Record<string, string>;
  /**
   * The start of the reason this upgrade disables with. A host disabled for any other reason
   * (or none) was disabled by an operator before the upgrade, and stays disabled.
   */
  ourReason?: string;
}

export interface SetComputeServicesResult {
  summary: string;
  alreadyDone: boolean;
  /** Hosts this call changed. */
  changed: string[];
  /** Hosts already in the wanted state. */
  unchanged: string[];
  /** Hosts found disabled for a reason other than ours (only knowable with --long). */
  disabledByOthers: string[];
  /** Hosts an enable left disabled because an operator disabled them, with their reason. */
  leftDisabled: { host: string; reason: string | null }[];
  commands: CommandRecord[];
}

export interface WaitForNoTasksInput {
  target: SshTarget;
  /** host → rendered serverTasksOnHost command. */
  commandsPerHost: Record<string, string>;
  timeoutMs: number;
  pollMs?: number;
}

export interface WaitForComputesUpInput {
  target: SshTarget;
  listCommand: string;
  hosts: string[];
  /** When the computes were restarted (ISO 8601); one instant or one per host. */
  restartedAfter: string | Record<string, string>;
  timeoutMs: number;
  pollMs?: number;
  /** At the deadline, return the hosts not up instead of failing, unless none is up. */
  partial?: boolean;
}

export interface FindOrphanedServicesInput {
  target: SshTarget;
  listCommand: string;
  /** nova host names of every inventory node. */
  knownHosts: string[];
  /** `host/binary` of every service the inventory runs; without it only unknown hosts count. */
  knownServices?: string[];
}

export interface OrphanedService {
  id: string | number;
  binary: string;
  host: string;
  status: string;
  state: string;
  updatedAt: string | null;
  reason: string;
}

/**
 * Per-host openstack commands of one batch at once, this many at a time. One after another, a
 * batch of 50 computes spent 24 s disabling and 14 s checking for tasks on the scale lab (load
 * 18 on 2 cores), more than its nodes' whole install-stop-start chain; a real openstack call
 * takes 1-2 s, so 50 in series would be over a minute per batch. 8 stays within one SSH
 * connection's sessions (the pool's 8 channels) to the node that runs them.
 */
export const HOST_COMMANDS_AT_ONCE = 8;

/**
 * The service list is parsed whole, so it must not be cut to the pool's 64 KiB tail: on the
 * scale lab 502 services printed ~150 KB of JSON and the batch failed with "did not print
 * JSON". openstackclient prints ~300 bytes a service; 16 MiB holds 50,000 of them. Its output
 * is parsed and dropped, never recorded in history.
 */
export const SERVICE_LIST_OUTPUT_BYTES = 16 * 1024 * 1024;

export function createComputeActivities(deps: NovaDeps) {
  const { runner } = deps;

  async function listServices(
    target: SshTarget,
    listCommand: string,
    commands: CommandRecord[],
  ): Promise<ComputeServiceRecord[]> {
    return parseServiceList(
      (await runRead(runner, target, listCommand, commands, undefined, SERVICE_LIST_OUTPUT_BYTES)).stdout,
    );
  }

  function computeOf(records: ComputeServiceRecord[], host: string, node: string): ComputeServiceRecord {
    const found = records.filter((r) => r.Binary === COMPUTE && r.Host === host);
    if (found.length !== 1) {
      throw nonRetryable(
        'NovaComputeServiceNotFound',
        `nova knows ${found.length} nova-compute services on host "${host}" (asked on ${node}); check the inventory's novaHost`,
        { host, count: found.length },
      );
    }
    return found[0]!;
  }

  async function setStatus(
    input: SetComputeServicesInput,
    wanted: 'enabled' | 'disabled',
    commandsByHost: Record<string, string>,
    reason?: string,
    ourReason?: string,
  ): Promise<SetComputeServicesResult> {
    const { target, listCommand, hosts } = input;
    const commands: CommandRecord[] = [];
    const records = await listServices(target, listCommand, commands);
    const changed: string[] = [];
    const unchanged: string[] = [];
    const disabledByOthers: string[] = [];
    const leftDisabled: { host: string; reason: string | null }[] = [];
    const toRun: { host: string; command: string }[] = [];
    for (const host of hosts) {
      const svc = computeOf(records, host, target.node);
      if (wanted === 'enabled' && ourReason !== undefined && svc.Status === 'disabled') {
        // Without the column an operator's own disable looks like ours: refuse rather than guess.
        if (!('Disabled Reason' in svc)) {
          throw nonRetryable(
            'NovaServiceListWithoutReason',
            `the service list on ${target.node} has no "Disabled Reason" column, so an operator's own disable of ${host} cannot be told from this upgrade's; add --long to commands.serviceList`,
            { host },
          );
        }
        const theirs = svc['Disabled Reason'] ?? null;
        if (!theirs?.startsWith(ourReason)) {
          leftDisabled.push({ host, reason: theirs });
          continue;
        }
      }
      if (svc.Status === wanted) {
        unchanged.push(host);
        const theirReason = svc['Disabled Reason'];
        if (wanted === 'disabled' && reason && theirReason && theirReason !== reason) disabledByOthers.push(host);
        continue;
      }
      const command = commandsByHost[host];
      if (!command)
        throw nonRetryable('NovaMissingCommand', `no command was given to set nova-compute on ${host} ${wanted}`, {
          host,
        });
      toRun.push({ host, command });
    }
    // Each command sets one host; a failed one leaves the others set, and a retry reads the
    // list first and sets only what is still unset.
    const results = await mapLimit(toRun, HOST_COMMANDS_AT_ONCE, async ({ host, command }) => {
      const r = await beatingWhile(
        { running: command },
        runner.run(target, command, { timeoutMs: 60_000, signal: cancellationSignal() }),
      );
      return { host, command, r };
    });
    for (const { host, command, r } of results) {
      commands.push(toRecord(r));
      if (r.exitCode !== 0)
        throw new Error(
          `on ${target.node}, \`${command}\` exited ${r.exitCode ?? r.signal}: ${lastLines(outputOf(r), 5)}`,
        );
      changed.push(host);
    }
    const verb = wanted === 'disabled' ? 'disabled' : 'enabled';
    const wantedHosts = hosts.filter((h) => !leftDisabled.some((l) => l.host === h));
    if (changed.length) {
      const after = await listServices(target, listCommand, commands);
      const wrong = wantedHosts.filter((h) => computeOf(after, h, target.node).Status !== wanted);
      if (wrong.length) throw new Error(`nova-compute on ${wrong.join(', ')} is still not ${wanted} after setting it`);
    }
    const kept = leftDisabled.length
      ? `; left ${leftDisabled.map((l) => `${l.host} disabled as an operator set it (${l.reason ? `"${l.reason}"` : 'no reason given'})`).join(', ')}`
      : '';
    const summary = changed.length
      ? `${verb} nova-compute on ${changed.join(', ')}${unchanged.length ? ` (${unchanged.join(', ')} already ${verb})` : ''}${kept}`
      : wantedHosts.length
        ? `nova-compute already ${verb} on ${wantedHosts.join(', ')}${kept}`
        : kept.slice(2);
    return { summary, alreadyDone: changed.length === 0, changed, unchanged, disabledByOthers, leftDisabled, commands };
  }

  function disableComputeServices(input: DisableComputeServicesInput): Promise<SetComputeServicesResult> {
    return setStatus(input, 'disabled', input.disableCommands, input.reason);
  }

  function enableComputeServices(input: EnableComputeServicesInput): Promise<SetComputeServicesResult> {
    return setStatus(input, 'enabled', input.enableCommands, undefined, input.ourReason);
  }

  async function waitForNoTasksInProgress(
    input: WaitForNoTasksInput,
  ): Promise<{ summary: string; polls: number; commands: CommandRecord[] }> {
    const commands: CommandRecord[] = [];
    const deadline = Date.now() + input.timeoutMs;
    const hosts = Object.keys(input.commandsPerHost);
    const delay = backoff(input.pollMs ?? 2000, FIRST_POLL_MS);
    for (let polls = 1; ; polls++) {
      const busy: Array<ServerTask & { host: string }> = [];
      const lists = await mapLimit(hosts, HOST_COMMANDS_AT_ONCE, async (host) => {
        const read: CommandRecord[] = [];
        const tasks = parseServerTasks(
          (await runRead(runner, input.target, input.commandsPerHost[host]!, read)).stdout,
        );
        // A real `openstack server list` takes 2-4 s: a batch of hosts must not outlast the heartbeat timeout.
        heartbeat({ polls, host });
        return { host, tasks, read };
      });
      for (const { host, tasks, read } of lists) {
        commands.push(...read);
        busy.push(...tasks.filter(isTaskInProgress).map((t) => ({ ...t, host })));
      }
      if (!busy.length)
        return {
          summary: `no server tasks in progress on ${hosts.join(', ')}`,
          polls,
          commands: commands.slice(-hosts.length),
        };
      const list = busy.map((b) => `${b.ID} (${b['Task State']}) on ${b.host}`);
      if (Date.now() >= deadline) {
        throw new Error(
          `after ${Math.round(input.timeoutMs / 1000)} s servers still have tasks in progress: ${list.slice(0, 10).join(', ')}${list.length > 10 ? ` and ${list.length - 10} more` : ''}`,
        );
      }
      heartbeat({ polls, inProgress: list.slice(0, 10) });
      await sleep(delay(), cancellationSignal());
    }
  }

  // A service stays "up" for service_down_time (60 s) after its last heartbeat, so "up" alone
  // could be the old process's last report: only a heartbeat newer than the restart counts.
  async function waitForComputesUp(input: WaitForComputesUpInput): Promise<{
    summary: string;
    polls: number;
    commands: CommandRecord[];
    /** With `partial`: the hosts still not up at the deadline, each with why. */
    notUp?: { host: string; why: string }[];
  }> {
    const commands: CommandRecord[] = [];
    const deadline = Date.now() + input.timeoutMs;
    const since = (host: string) =>
      Date.parse(typeof input.restartedAfter === 'string' ? input.restartedAfter : (input.restartedAfter[host] ?? ''));
    for (const host of input.hosts) {
      if (Number.isNaN(since(host))) throw nonRetryable('NovaBadInput', `no valid restart time for ${host}`, { host });
    }
    const delay = backoff(input.pollMs ?? 2000, FIRST_POLL_MS);
    for (let polls = 1; ; polls++) {
      const records = await listServices(input.target, input.listCommand, commands);
      const waiting: string[] = [];
      const notUp: { host: string; why: string }[] = [];
      for (const host of input.hosts) {
        const svc = computeOf(records, host, input.target.node);
        const updated = parseNovaTimestamp(svc['Updated At']);
        let why: string | undefined;
        if (svc.State !== 'up') why = `${host} is ${svc.State}`;
        else if (updated === undefined || updated <= since(host))
          why = `${host} last reported at ${svc['Updated At'] ?? 'never'} UTC, before its restart`;
        if (why) {
          waiting.push(why);
          notUp.push({ host, why });
        }
      }
      if (!waiting.length)
        return {
          summary: `nova-compute reports up on new code on ${input.hosts.join(', ')}`,
          polls,
          commands: commands.slice(-1),
        };
      if (Date.now() >= deadline) {
        const after = `after ${Math.round(input.timeoutMs / 1000)} s`;
        // A batch's nodes are judged one by one: those up go on, the others are held by themselves.
        if (input.partial && notUp.length < input.hosts.length) {
          const up = input.hosts.filter((h) => !notUp.some((x) => x.host === h));
          return {
            summary: `nova-compute reports up on new code on ${up.join(', ')}; ${after} not ${notUp.map((x) => x.host).join(', ')}`,
            polls,
            commands: commands.slice(-1),
            notUp: notUp.map((x) => ({ host: x.host, why: `${after}: ${x.why}` })),
          };
        }
        throw new Error(`${after}: ${waiting.join('; ')}`);
      }
      // At fleet size the list is long: the heartbeat carries its length and the first few.
      heartbeat({ polls, waitingCount: waiting.length, waiting: waiting.slice(0, 10) });
      await sleep(delay(), cancellationSignal());
    }
  }

  // Stale records (a renamed host, a decommissioned compute) still count towards nova's
  // minimum service version and make the upgrade check warn or fail; the workflow decides.
  async function findOrphanedServices(
    input: FindOrphanedServicesInput,
  ): Promise<{ summary: string; orphans: OrphanedService[]; commands: CommandRecord[] }> {
    const commands: CommandRecord[] = [];
    const records = await listServices(input.target, input.listCommand, commands);
    const hosts = new Set(input.knownHosts);
    const services = input.knownServices ? new Set(input.knownServices) : undefined;
    const orphans: OrphanedService[] = [];
    for (const r of records) {
      let reason: string | undefined;
      if (!hosts.has(r.Host)) reason = `host ${r.Host} is not in the inventory`;
      else if (services && r.State === 'down' && !services.has(`${r.Host}/${r.Binary}`))
        reason = `${r.Binary} on ${r.Host} is down and not in the inventory`;
      if (reason) {
        orphans.push({
          id: r.ID,
          binary: r.Binary,
          host: r.Host,
          status: r.Status,
          state: r.State,
          updatedAt: r['Updated At'] ?? null,
          reason,
        });
      }
    }
    const summary = orphans.length
      ? `${orphans.length} service record${orphans.length === 1 ? '' : 's'} nova knows but the inventory does not: ${orphans.map((o) => `${o.binary}@${o.host}`).join(', ')}`
      : 'every service nova knows is in the inventory';
    return { summary, orphans, commands };
  }

  return {
    disableComputeServices,
    enableComputeServices,
    waitForNoTasksInProgress,
    waitForComputesUp,
    findOrphanedServices,
  };
}
