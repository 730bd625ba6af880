// The seed's "drain connections on n-api while the tempest tests are running", per API server:
// drained on every LB, its sessions gone, restarted on the new code, checked on its own address,
// enabled again. One at a time (rolling), or the monotonic switch-over: once the first server
// serves the new release, the rest are drained in the same exchange that enables it, so no
// client sees the API version go down again.
import { patched } from '@temporalio/workflow';
import { cmd, drainedServices, nodeByName, type DrainedService } from '../../common/topology';
import { drainSetting } from '../../common/haproxy';
import type { Outcome } from '../../common/messages';
import type { Inventory } from '../../inventory/schema';
import { describeFailure } from '../failures';
import { drainEstimate } from '../window';
import { restartStep } from './install';
import { onEveryLb } from './lbCommands';
import type { RunbookStep, RunContext } from './types';

export function apiServerSteps(inv: Inventory, installOnce: (node: string) => RunbookStep[]): RunbookStep[] {
  const phase = 'during-window';
  const backend = inv.haproxy.backend;
  const all = drainedServices(inv);
  // nova-api behind haproxy.backend, as ever; services behind backends of their own follow.
  const onDefault = (d: DrainedService) => d.backends.length === 1 && d.backends[0] === backend;
  const drained = all.filter(onDefault);
  const own = all.filter((d) => !onDefault(d));
  const servers = [...new Set(drained.map((d) => d.server))];
  const monotonic = inv.haproxy.switchover === 'monotonic' && drained.length > 1;
  const steps: RunbookStep[] = [
    // Before any drain: the weight each server had, which its enable restores.
    {
      id: 'record-weights',
      phase,
      title: `record the weight of ${servers.join(', ')} on every LB`,
      commands: onEveryLb(inv, 'show servers state'),
      run: async (rt) => {
        const out = await rt.ops.haproxy.recordServerWeights(drained.map((d) => d.server));
        rt.weights = out.weights;
        return out;
      },
    },
  ];
  if (inv.tempest.enabled) {
    steps.push({
      id: 'tempest-during-api',
      phase,
      title: `run tempest on ${inv.tempest.host} while nova-api restarts`,
      node: inv.tempest.host,
      commands: [{ node: inv.tempest.host, command: cmd(inv, 'tempest') }],
      beside: {
        until: `wait-up:${drained[drained.length - 1]!.server}`,
        ...(inv.tempest.repeatDuringApi ? { repeat: true } : {}),
      },
      run: (rt, key) => rt.ops.tempest.runTempest(key),
    });
  }
  drained.forEach((d, i) => {
    const n = nodeByName(inv, d.node);
    const window = {
      what: `the drain of ${d.server} (API server ${i + 1}/${drained.length})`,
      estimate: (rt: RunContext) => drainEstimate(inv, rt.state, servers),
    };
    // After a switch-over the server is drained already: its cycle starts at the session wait.
    const drainedAlready = monotonic && i > 0;
    if (!drainedAlready) {
      steps.push({
        id: `drain:${d.server}`,
        phase,
        title: `drain ${d.server} on every LB`,
        node: d.node,
        commands: onEveryLb(inv, `set server ${backend}/${d.server} ${drainSetting(inv.haproxy.drainMode)}`),
        exposes: { sets: [{ drained: { server: d.server, node: d.node } }] },
        window,
        run: async (rt) => {
          const out = await rt.ops.haproxy.drainApiServer(d.server);
          rt.sessionsAtDrain = { ...rt.sessionsAtDrain, ...out.sessionsAtDrain };
          return out;
        },
      });
    }
    steps.push(
      {
        id: `wait-sessions:${d.server}`,
        phase,
        title: `wait until ${d.server} has no sessions`,
        node: d.node,
        commands: onEveryLb(inv, 'show stat'),
        choices: ['retry', 'shutdown-sessions', 'skip', 'abort'],
        onAction: async (rt) => void (await rt.ops.haproxy.shutdownSessions(d.server)),
        ...(drainedAlready ? { window } : {}),
        run: (rt) => rt.ops.haproxy.waitForNoSessions(d.server, undefined, rt.sessionsAtDrain?.[d.server]),
      },
      ...installOnce(d.node),
      // Enabling needs a serving nova-api, so an abort only restarts it; it stays drained if it won't serve.
      restartStep(inv, phase, d.node, d.unit),
      // A node that fails here stays drained: enabling a broken nova-api would fail requests.
      {
        id: `check-api-version:${d.server}`,
        phase,
        title: `check ${d.server} serves nova ${inv.release.to} on its own address`,
        node: d.node,
        commands: [{ node: '(worker)', command: `GET ${n.api?.url ?? n.address}/` }],
        run: (rt) => checkServesRelease(rt, d.node),
      },
    );
    if (monotonic && i === 0) {
      const rest = drained.slice(1);
      steps.push({
        id: 'switch-over',
        phase,
        title: `enable ${d.server} and drain ${rest.map((x) => x.server).join(', ')} in one exchange`,
        commands: onEveryLb(inv, `set server ${backend}/${d.server} state ready; ...`),
        exposes: {
          sets: rest.map((o) => ({ drained: { server: o.server, node: o.node } })),
          clears: [{ drained: { server: d.server, node: d.node } }],
        },
        run: async (rt) => {
          const out = await rt.ops.haproxy.switchOverApiServers(
            d.server,
            rest.map((o) => o.server),
            rt.weights,
          );
          rt.sessionsAtDrain = { ...rt.sessionsAtDrain, ...out.sessionsAtDrain };
          await rt.ops.lb.saveServerState();
          return out;
        },
      });
    } else {
      steps.push({
        id: `enable:${d.server}`,
        phase,
        title: `enable ${d.server} on every LB`,
        node: d.node,
        commands: onEveryLb(inv, `set server ${backend}/${d.server} state ready`),
        exposes: { clears: [{ drained: { server: d.server, node: d.node } }] },
        run: async (rt) => {
          const out = await rt.ops.haproxy.enableApiServer(d.server, rt.weights);
          await rt.ops.lb.saveServerState();
          return out;
        },
      });
    }
    steps.push({
      id: `wait-up:${d.server}`,
      phase,
      title: `wait until every LB reports ${d.server} UP`,
      node: d.node,
      commands: onEveryLb(inv, 'show stat'),
      run: (rt) => rt.ops.haproxy.waitForServerUp(d.server),
    });
  });
  steps.push(...ownBackendSteps(inv, own, installOnce));
  if (inv.probe.enabled) {
    steps.push({
      id: 'vip-probe-result',
      phase,
      title: `check what API clients saw through ${inv.vip.url}`,
      commands: [
        {
          node: '(worker)',
          command: `GET ${inv.vip.url}{${inv.probe.paths.join(',')}} at ${inv.probe.ratePerSecond}/s`,
        },
      ],
      before: stopProbe,
      run: checkProbeResult,
    });
  }
  return steps;
}

/**
 * A service behind backends of its own (kolla's and OpenStack-Ansible's nova-metadata): every
 * backend that routes to it is drained first and waited on, the service restarts only then,
 * and every backend is enabled after and waited on until UP. Rolling, one service at a time.
 */
function ownBackendSteps(
  inv: Inventory,
  own: DrainedService[],
  installOnce: (node: string) => RunbookStep[],
): RunbookStep[] {
  const phase = 'during-window';
  const steps: RunbookStep[] = [];
  const backends = [...new Set(own.flatMap((d) => d.backends))];
  for (const b of backends) {
    const servers = [...new Set(own.filter((d) => d.backends.includes(b)).map((d) => d.server))];
    steps.push({
      id: `record-weights:${b}`,
      phase,
      title: `record the weight of ${servers.join(', ')} in ${b} on every LB`,
      commands: onEveryLb(inv, 'show servers state'),
      run: async (rt) => {
        const out = await rt.ops.haproxy.recordServerWeights(servers, b);
        rt.backendWeights = { ...rt.backendWeights, [b]: out.weights };
        return out;
      },
    });
  }
  const each = async (d: DrainedService, fn: (b: string) => Promise<{ summary: string }>) => {
    const out: string[] = [];
    for (const b of d.backends) out.push((await fn(b)).summary);
    return { summary: out.join('; ') };
  };
  for (const d of own) {
    const key = `${d.backends.join('+')}/${d.server}`;
    const marks = d.backends.map((b) => ({ drained: { server: d.server, node: d.node, backend: b } }));
    steps.push(
      {
        id: `drain:${key}`,
        phase,
        title: `drain ${d.server} in ${d.backends.join(', ')} on every LB, before ${d.unit} restarts`,
        node: d.node,
        commands: d.backends.flatMap((b) =>
          onEveryLb(inv, `set server ${b}/${d.server} ${drainSetting(inv.haproxy.drainMode)}`),
        ),
        exposes: { sets: marks },
        window: { what: `the drain of ${key}`, estimate: (rt) => drainEstimate(inv, rt.state, [d.server]) },
        run: (rt) => each(d, (b) => rt.ops.haproxy.drainApiServer(d.server, b)),
      },
      {
        id: `wait-sessions:${key}`,
        phase,
        title: `wait until ${d.server} has no sessions in ${d.backends.join(', ')}`,
        node: d.node,
        commands: onEveryLb(inv, 'show stat'),
        choices: ['retry', 'shutdown-sessions', 'skip', 'abort'],
        onAction: async (rt) => void (await each(d, (b) => rt.ops.haproxy.shutdownSessions(d.server, b))),
        run: (rt) => each(d, (b) => rt.ops.haproxy.waitForNoSessions(d.server, b)),
      },
      ...installOnce(d.node),
      restartStep(inv, phase, d.node, d.unit),
      {
        id: `enable:${key}`,
        phase,
        title: `enable ${d.server} in ${d.backends.join(', ')} on every LB`,
        node: d.node,
        commands: d.backends.flatMap((b) => onEveryLb(inv, `set server ${b}/${d.server} state ready`)),
        exposes: { clears: marks },
        run: async (rt) => {
          const out = await each(d, (b) => rt.ops.haproxy.enableApiServer(d.server, rt.backendWeights?.[b] ?? {}, b));
          await rt.ops.lb.saveServerState();
          return out;
        },
      },
      {
        id: `wait-up:${key}`,
        phase,
        title: `wait until every LB reports ${d.server} UP in ${d.backends.join(', ')}`,
        node: d.node,
        commands: onEveryLb(inv, 'show stat'),
        run: (rt) => each(d, (b) => rt.ops.haproxy.waitForServerUp(d.server, b)),
      },
    );
  }
  return steps;
}

/**
 * Two releases can share a microversion (29.0.0 and 30.0.0 both say 2.96): the installed code
 * must be the new one too.
 */
async function checkServesRelease(rt: RunContext, node: string): Promise<Outcome> {
  let out: Awaited<ReturnType<RunContext['ops']['http']['checkApiServesVersion']>>;
  let installed: Awaited<ReturnType<RunContext['ops']['nova']['readCodeVersion']>>;
  if (patched('api-check-reads-at-once')) {
    // Two reads of different things (the HTTP answer, the code on disk), both after the restart:
    // at once, one round trip fewer per API server. Both settle before a failure holds the step.
    const [served, code] = await Promise.allSettled([
      rt.ops.http.checkApiServesVersion(node),
      rt.ops.nova.readCodeVersion(node),
    ]);
    if (served.status === 'rejected') throw served.reason;
    if (code.status === 'rejected') throw code.reason;
    out = served.value;
    installed = code.value;
  } else {
    out = await rt.ops.http.checkApiServesVersion(node);
    installed = await rt.ops.nova.readCodeVersion(node);
  }
  if (installed.version !== rt.inv.release.to) {
    throw new Error(
      `${node} serves max microversion ${out.maxMicroversion} but has nova ${installed.version} installed, not ${rt.inv.release.to}`,
    );
  }
  return { summary: `${out.summary}; nova ${installed.version} installed` };
}

/** The probe ends with its aggregates, which the progress shows from here on. */
async function stopProbe(rt: RunContext): Promise<void> {
  if (!rt.probe) return;
  const outcome = await rt.probe.stop();
  rt.probe = undefined;
  rt.probeOutcome = outcome;
  if (!(outcome instanceof Error)) {
    const { requests, failedRequests, versionDecreases, latencyMs } = outcome;
    rt.state.progress.probe = { requests, failedRequests, versionDecreases, latencyMs };
  }
}

async function checkProbeResult(rt: RunContext): Promise<Outcome> {
  const snap = rt.probeOutcome;
  if (!snap || snap instanceof Error)
    throw new Error(`the VIP probe was lost, so nothing shows what clients saw: ${describeFailure(snap)}`);
  const counters = await rt.ops.haproxy.readBackendCounters();
  const max = rt.inv.probe.maxFailures;
  if (snap.failedRequests > max) {
    const first = snap.firstFailures
      .slice(0, 3)
      .map((f) => `${f.kind} on ${f.path}: ${f.reason}`)
      .join('; ');
    throw new Error(
      `${snap.failedRequests} of ${snap.requests} requests through the VIP failed (allowed: ${max}); first: ${first}`,
    );
  }
  const gaps = snap.resumedAfterWorkerLoss
    ? `, restarted ${snap.resumedAfterWorkerLoss} time(s) after its worker died (unmeasured gaps)`
    : '';
  return {
    summary: `${snap.requests} requests through the VIP, ${snap.failedRequests} failed, ${snap.versionDecreases} version decreases, p99 ${snap.latencyMs.p99} ms${gaps}; ${counters.summary}`,
  };
}
