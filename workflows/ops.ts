// The runbook's operations as the workflow calls them: it renders command templates and picks
// the nodes, and each call becomes one activity whose summary reads like the runbook in the
// Web UI. Deterministic: no I/O here.
import { ActivityCancellationType, CancellationScope, proxyActivities, sleep, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { Inventory, Node } from '../inventory/schema';
import type { NotifyEvent } from './definitions';
import { sshTargetFor, type SshTarget } from '../activities/ssh/types';
import { cmd, lbNodes, nodeByName } from './plan';
import { lbNodeJobs } from '../activities/lb/jobs';
import { runKey, type Outcome } from './steps';

export type ServerWeights = Record<string, Record<string, number>>;

export interface LbRef {
  node: string;
  socket: NonNullable<Node['lb']>['socket'];
  ssh?: SshTarget;
}

type Acts = Activities;

/**
 * `short` activities read or change one thing and never heartbeat: a dead worker is noticed
 * when their start-to-close runs out. `long` ones (detached runs, waits, tempest) heartbeat
 * every poll, so a dead worker or a hung SSH link shows up within the heartbeat timeout.
 */
type Kind = 'short' | 'long';

export class Ops {
  private readonly acts: Acts;
  private readonly inv: Inventory;

  constructor(inv: Inventory) {
    this.inv = inv;
    // Every call passes its own options (executeWithOptions); these only give the proxy a type.
    this.acts = proxyActivities<Acts>({ startToCloseTimeout: inv.timeouts.readSeconds * 1000 });
  }

  private target(name: string): SshTarget {
    return sshTargetFor(this.inv, nodeByName(this.inv, name));
  }

  private get ctl(): SshTarget {
    return this.target(this.inv.controller);
  }

  private get stateDir(): string {
    return this.inv.remoteStateDir;
  }

  private lbs(): LbRef[] {
    return lbNodes(this.inv).map((n) => ({
      node: n.name,
      socket: n.lb!.socket,
      ...(n.lb!.socket.via === 'ssh' ? { ssh: sshTargetFor(this.inv, n) } : {}),
    }));
  }

  private call<K extends keyof Acts>(kind: Kind, name: K, summary: string, ...args: Parameters<Acts[K]>): ReturnType<Acts[K]> {
    return (this.acts[name] as unknown as { executeWithOptions: (o: ActivityOptions, a: unknown[]) => ReturnType<Acts[K]> }).executeWithOptions(
      { ...this.options(kind), summary },
      args,
    );
  }

  private options(kind: Kind): ActivityOptions {
    const t = this.inv.timeouts;
    const retry = {
      maximumAttempts: this.inv.retry.maximumAttempts,
      initialInterval: this.inv.retry.initialIntervalSeconds * 1000,
      maximumInterval: this.inv.retry.maximumIntervalSeconds * 1000,
      backoffCoefficient: 2,
    };
    if (kind === 'short') return { startToCloseTimeout: t.readSeconds * 1000, retry };
    const seconds = Math.max(t.commandSeconds, t.tempestSeconds, t.drainSeconds, t.serviceUpSeconds) + 120;
    return { startToCloseTimeout: seconds * 1000, heartbeatTimeout: t.heartbeatSeconds * 1000, retry };
  }

  /** Only what a compute batch needs, so the child's history does not carry the whole fleet. */
  inventoryForBatch(nodes: string[]): Inventory {
    const keep = new Set([...nodes, this.inv.controller]);
    return { ...this.inv, nodes: this.inv.nodes.filter((n) => keep.has(n.name)) };
  }

  checkLoadBalancers(servers: string[]): Promise<Outcome> {
    return this.call('short', 'checkLoadBalancers', `check HAProxy on ${this.lbs().map((l) => l.node).join(', ')}`, { lbs: this.lbs(), backend: this.inv.haproxy.backend, servers });
  }

  pointEndpointAtVip(): Promise<Outcome> {
    const c = this.inv.commands;
    return this.call('short', 'pointComputeEndpointAtVip', `point keystone's compute endpoint at ${this.inv.vip.computeEndpointUrl}`, {
      target: this.ctl,
      osCloud: this.inv.openstack.osCloud,
      listTemplate: c.endpointList,
      setTemplate: c.endpointSet,
      url: this.inv.vip.computeEndpointUrl,
    });
  }

  runTempest(key: string): Promise<Outcome> {
    const host = this.inv.tempest.host;
    return this.call('long', 'runTempest', `run tempest on ${host}`, {
      target: this.target(host),
      command: cmd(this.inv, 'tempest'),
      key,
      stateDir: this.stateDir,
      timeoutMs: this.inv.timeouts.tempestSeconds * 1000,
    });
  }

  /** `to` also demands the new code version installed: two releases can share a microversion. */
  async checkApiServes(node: string, expect: 'any' | 'to'): Promise<Outcome> {
    const n = nodeByName(this.inv, node);
    const out = await this.call('long', 'checkApiServesVersion', `check nova-api on ${node} at ${n.api?.url}`, {
      node,
      url: n.api?.url ?? `http://${n.address}:8774`,
      timeoutMs: this.inv.timeouts.serviceUpSeconds * 1000,
      pollMs: this.inv.timeouts.pollSeconds * 1000,
    });
    if (expect === 'any') return out;
    const installed = await this.call('short', 'readCodeVersion', `read the nova version installed on ${node}`, { target: this.target(node), command: cmd(this.inv, 'codeVersion') });
    if (installed.version !== this.inv.release.to) {
      throw new Error(`${node} serves max microversion ${out.maxMicroversion} but has nova ${installed.version} installed, not ${this.inv.release.to}`);
    }
    return { summary: `${out.summary}; nova ${installed.version} installed` };
  }

  installCode(node: string, key: string): Promise<Outcome> {
    return this.call('long', 'installCode', `install nova ${this.inv.release.to} on ${node}`, {
      target: this.target(node),
      command: cmd(this.inv, 'installCode', { version: this.inv.release.to, node }),
      versionCommand: cmd(this.inv, 'codeVersion'),
      version: this.inv.release.to,
      key,
      stateDir: this.stateDir,
      timeoutMs: this.inv.timeouts.commandSeconds * 1000,
    });
  }

  syncApiDb(key: string): Promise<Outcome> {
    return this.call('long', 'syncApiDb', 'nova-manage api_db sync', { target: this.ctl, command: cmd(this.inv, 'apiDbSync'), key, stateDir: this.stateDir });
  }

  syncCellDb(cell: { name: string; configFile: string }, key: string): Promise<Outcome> {
    return this.call('long', 'syncCellDb', `nova-manage db sync for ${cell.name}`, {
      target: this.ctl,
      command: cmd(this.inv, 'dbSync', { config: cell.configFile, cell: cell.name }),
      key,
      stateDir: this.stateDir,
      cell: cell.name,
    });
  }

  upgradePlacement(key: string): Promise<Outcome> {
    return this.call('long', 'upgradePlacement', 'upgrade placement', {
      target: this.ctl,
      command: cmd(this.inv, 'upgradePlacement', { version: this.inv.release.to, node: this.inv.controller }),
      key,
      stateDir: this.stateDir,
    });
  }

  async pinComputeRpc(node: string): Promise<Outcome> {
    const n = nodeByName(this.inv, node);
    const results = await Promise.all(
      n.configFiles.map((path) =>
        this.call('short', 'setUpgradeLevelsCompute', `set [upgrade_levels] compute = auto in ${path} on ${node}`, {
          target: this.target(node),
          path,
          value: 'auto',
          readCommand: cmd(this.inv, 'readFile', { path }),
          key: 'nova-upgrade',
        }),
      ),
    );
    return { summary: results.map((r) => r.summary).join('; '), alreadyDone: results.every((r) => r.alreadyDone) };
  }

  async upgradeCheck(): Promise<Outcome & { warnings: string[] }> {
    const r = await this.call('short', 'runUpgradeCheck', 'nova-status upgrade check', { target: this.ctl, command: cmd(this.inv, 'upgradeCheck') });
    return { summary: r.summary, warnings: r.warnings.map((w) => `nova-status: ${w.name}: ${w.details ?? 'warning'}`) };
  }

  private unitInput(node: string, unit: string) {
    return {
      target: this.target(node),
      unit,
      stateCommand: cmd(this.inv, 'serviceState', { unit, node }),
      timeoutMs: this.inv.timeouts.serviceUpSeconds * 1000,
      pollMs: this.inv.timeouts.pollSeconds * 1000,
    };
  }

  /** The state read first is recorded in history, so a retry can see the restart took effect. */
  async restartService(node: string, unit: string, key: string): Promise<Outcome> {
    const before = await this.call('short', 'readServiceState', `read ${unit} state on ${node}`, { target: this.target(node), command: cmd(this.inv, 'serviceState', { unit, node }) });
    return this.call('long', 'restartService', `restart ${unit} on ${node}`, {
      ...this.unitInput(node, unit),
      restartCommand: cmd(this.inv, 'serviceRestart', { unit, node }),
      before: { mainPid: before.mainPid, startedMonotonic: before.startedMonotonic },
      key,
      stateDir: this.stateDir,
    });
  }

  /**
   * nova-compute is stopped gracefully, then started on the new code. `stoppedAt` is workflow
   * time once the stop is done: a heartbeat newer than it can only come from the new process.
   */
  async restartComputeService(node: string, unit: string, key: string): Promise<Outcome & { stoppedAt: string }> {
    const stop = await this.call('long', 'stopService', `gracefully stop ${unit} on ${node}`, { ...this.unitInput(node, unit), stopCommand: cmd(this.inv, 'serviceStop', { unit, node }), key: `${key}/stop`, stateDir: this.stateDir });
    const stoppedAt = new Date().toISOString();
    const start = await this.call('long', 'startService', `start ${unit} on ${node} on the new code`, { ...this.unitInput(node, unit), startCommand: cmd(this.inv, 'serviceStart', { unit, node }), key: `${key}/start`, stateDir: this.stateDir });
    return { summary: `${stop.summary}; ${start.summary}`, alreadyDone: stop.alreadyDone && start.alreadyDone, stoppedAt };
  }

  /** After an abort: a stopped unit is started again; a running one is left alone. */
  ensureServiceRunning(node: string, unit: string): Promise<Outcome> {
    return this.call('long', 'startService', `start ${unit} on ${node} again after the abort`, {
      ...this.unitInput(node, unit),
      startCommand: cmd(this.inv, 'serviceStart', { unit, node }),
      key: runKey(`abort-start:${node}:${unit}`, 0),
      stateDir: this.stateDir,
    });
  }

  private hostCommands(hosts: string[], name: 'computeServiceDisable' | 'computeServiceEnable' | 'serverTasksOnHost', reason?: string): Record<string, string> {
    return Object.fromEntries(hosts.map((host) => [host, cmd(this.inv, name, { host, ...(reason ? { reason } : {}) })]));
  }

  disableComputes(hosts: string[], reason: string): Promise<Outcome> {
    return this.call('short', 'disableComputeServices', `disable ${hosts.join(', ')} for scheduling`, {
      target: this.ctl,
      listCommand: cmd(this.inv, 'serviceList'),
      hosts,
      disableCommands: this.hostCommands(hosts, 'computeServiceDisable', reason),
      reason,
    });
  }

  enableComputes(hosts: string[]): Promise<Outcome> {
    return this.call('short', 'enableComputeServices', `enable ${hosts.join(', ')} for scheduling`, {
      target: this.ctl,
      listCommand: cmd(this.inv, 'serviceList'),
      hosts,
      enableCommands: this.hostCommands(hosts, 'computeServiceEnable'),
    });
  }

  waitForNoTasks(hosts: string[]): Promise<Outcome> {
    return this.call('long', 'waitForNoTasksInProgress', `wait until no instance task runs on ${hosts.join(', ')}`, {
      target: this.ctl,
      commandsPerHost: this.hostCommands(hosts, 'serverTasksOnHost'),
      timeoutMs: this.inv.timeouts.serviceUpSeconds * 1000,
      pollMs: this.inv.timeouts.pollSeconds * 1000,
    });
  }

  /** Heartbeats newer than the restart: an old one stays "up" for service_down_time. */
  waitForComputesUp(hosts: string[], restartedAfter: Record<string, string>): Promise<Outcome> {
    return this.call('long', 'waitForComputesUp', `wait until ${hosts.join(', ')} report up on the new code`, {
      target: this.ctl,
      listCommand: cmd(this.inv, 'serviceList'),
      hosts,
      restartedAfter,
      timeoutMs: this.inv.timeouts.serviceUpSeconds * 1000,
      pollMs: this.inv.timeouts.pollSeconds * 1000,
    });
  }

  hupService(node: string, unit: string): Promise<Outcome> {
    return this.call('short', 'hupService', `SIGHUP ${unit} on ${node}`, { target: this.target(node), unit, command: cmd(this.inv, 'serviceHup', { unit, node }) });
  }

  async checkOrphans(): Promise<Outcome> {
    const r = await this.call('short', 'findOrphanedServices', 'check the service list for orphaned records', {
      target: this.ctl,
      listCommand: cmd(this.inv, 'serviceList'),
      knownHosts: this.inv.nodes.map((n) => n.novaHost),
    });
    if (r.orphans.length) {
      throw new Error(`orphaned service records: ${r.orphans.map((o) => `${o.binary} on ${o.host} (id ${o.id}, ${o.reason})`).join('; ')}; remove them with "openstack compute service delete <id>" and retry`);
    }
    return r;
  }

  onlineMigrations(key: string): Promise<Outcome> {
    return this.call('long', 'runOnlineDataMigrations', 'nova-manage db online_data_migrations until done', {
      target: this.ctl,
      command: cmd(this.inv, 'onlineDataMigrations', { maxCount: 1000 }),
      keyPrefix: key,
      stateDir: this.stateDir,
      maxRounds: 1000,
    });
  }

  async recordWeights(servers: string[]): Promise<Outcome & { weights: ServerWeights }> {
    return this.call('short', 'recordServerWeights', `record the weight of ${servers.join(', ')} on every LB`, { lbs: this.lbs(), backend: this.inv.haproxy.backend, servers });
  }

  drain(server: string): Promise<Outcome> {
    return this.call('short', 'drainApiServer', `drain ${server} on ${this.lbs().map((l) => l.node).join(', ')}`, {
      lbs: this.lbs(),
      backend: this.inv.haproxy.backend,
      server,
      mode: this.inv.haproxy.drainMode,
    });
  }

  waitForNoSessions(server: string): Promise<Outcome> {
    const t = this.inv.timeouts;
    return this.call('long', 'waitForNoSessions', `wait until ${server} has no sessions on every LB`, {
      lbs: this.lbs(),
      backend: this.inv.haproxy.backend,
      server,
      settleMs: t.settleSeconds * 1000,
      timeoutMs: t.drainSeconds * 1000,
      pollMs: t.pollSeconds * 1000,
    });
  }

  shutdownSessions(server: string): Promise<Outcome> {
    return this.call('short', 'shutdownSessions', `shut down the remaining sessions of ${server}`, { lbs: this.lbs(), backend: this.inv.haproxy.backend, server });
  }

  enable(server: string, weights: ServerWeights = {}): Promise<Outcome> {
    return this.call('short', 'enableApiServer', `enable ${server} on every LB`, { lbs: this.lbs(), backend: this.inv.haproxy.backend, server, weights });
  }

  switchOver(enable: string, drain: string[], weights: ServerWeights): Promise<Outcome> {
    return this.call('short', 'switchOverApiServers', `enable ${enable} and drain ${drain.join(', ')} in one exchange`, {
      lbs: this.lbs(),
      backend: this.inv.haproxy.backend,
      enable,
      drain,
      mode: this.inv.haproxy.drainMode,
      weights,
    });
  }

  waitUp(server: string): Promise<Outcome> {
    const t = this.inv.timeouts;
    return this.call('long', 'waitForServerUp', `wait until every LB reports ${server} UP`, {
      lbs: this.lbs(),
      backend: this.inv.haproxy.backend,
      server,
      timeoutMs: t.serviceUpSeconds * 1000,
      pollMs: t.pollSeconds * 1000,
    });
  }

  /**
   * The VIP probe runs beside the window's steps. Cancelled at the end, it still completes with
   * its aggregates, which is why the workflow waits for the cancellation to complete.
   */
  startProbe(requestStop: () => void): { stop: () => Promise<ProbeSnapshot | Error> } {
    const p = this.inv.probe;
    const scope = new CancellationScope();
    const run = scope
      .run(() =>
        (this.acts.runVipProbe as unknown as { executeWithOptions: (o: ActivityOptions, a: unknown[]) => Promise<ProbeSnapshot> }).executeWithOptions(
          {
            summary: `probe ${this.inv.vip.url} at ${p.ratePerSecond}/s from ${p.clients} clients`,
            startToCloseTimeout: PROBE_MAX_MS,
            scheduleToCloseTimeout: PROBE_MAX_MS,
            heartbeatTimeout: this.inv.timeouts.heartbeatSeconds * 1000,
            cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            // A worker death restarts it, carrying on from its last heartbeat, for the whole window.
            retry: { initialInterval: 1000, maximumInterval: 10_000 },
          },
          [
            {
              url: this.inv.vip.url,
              paths: p.paths,
              ratePerSecond: p.ratePerSecond,
              clients: p.clients,
              requestTimeoutMs: p.requestTimeoutSeconds * 1000,
              maxDurationMs: PROBE_MAX_MS,
            },
          ],
        ),
      )
      // Held, not thrown: a probe lost mid-window must not fail the workflow task.
      .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    return {
      // The probe asks for this flag and ends with its aggregates, even on an attempt that
      // starts after a worker died. Cancelling is the fallback for a probe that never asks.
      stop: async () => {
        requestStop();
        const timedOut = await Promise.race([run.then(() => false), sleep((this.inv.timeouts.heartbeatSeconds * 3 + 30) * 1000).then(() => true)]);
        if (timedOut) scope.cancel();
        return run;
      },
    };
  }

  /**
   * The activity retries delivery itself and never throws for an unreachable receiver; the
   * schedule-to-close limit also bounds the wait for a worker, so a lost notification costs
   * at most two minutes and never a hold.
   */
  notify(url: string, event: NotifyEvent): Promise<NotifyResult> {
    return (this.acts.notifyWebhook as unknown as { executeWithOptions: (o: ActivityOptions, a: unknown[]) => Promise<NotifyResult> }).executeWithOptions(
      {
        summary: `notify the webhook: ${event.event}${event.step ? ` at ${event.step}` : event.phase ? ` for ${event.phase}` : ''}`,
        startToCloseTimeout: 60_000,
        scheduleToCloseTimeout: 120_000,
        retry: { maximumAttempts: 2, initialInterval: 1_000 },
      },
      [{ url, event, attempts: 3, requestTimeoutMs: 5_000, backoffMs: 1_000 }],
    );
  }

  /**
   * Where `lb setup` configured a server-state file, it is dumped again after every enable: a
   * reload would otherwise load an older dump and drain the server again.
   */
  async saveServerStates(): Promise<void> {
    if (!this.inv.loadBalancer) return;
    for (const job of lbNodeJobs(this.inv)) {
      await this.call('short', 'saveServerState', `save HAProxy's server state on ${job.node}`, {
        node: job.node,
        target: job.target,
        lb: job.lb,
        sudo: job.sudo,
        serverStateFile: job.serverStateFile,
      });
    }
  }

  readBackendCounters(): Promise<BackendCounters> {
    return this.call('short', 'readBackendCounters', `read HAProxy's retry and redispatch counters for ${this.inv.haproxy.backend}`, { lbs: this.lbs(), backend: this.inv.haproxy.backend });
  }
}

/** A forgotten probe must stop by itself; no maintenance window is longer than this. */
const PROBE_MAX_MS = 12 * 3600 * 1000;

type ProbeSnapshot = Awaited<ReturnType<Acts['runVipProbe']>>;
type BackendCounters = Awaited<ReturnType<Acts['readBackendCounters']>>;
type NotifyResult = Awaited<ReturnType<Acts['notifyWebhook']>>;
