// The seed's HAProxy + keepalived setup as activities, one LB node at a time. Each one reads the
// node before it writes, so running it again with the same inventory changes nothing.
import { activityContext, pause } from '../common';
import { ApplicationFailure } from '@temporalio/common';
import { HaproxyRuntime } from '../haproxy/runtimeApi';
import { type LbTarget } from '../../common/haproxy';
import type { CommandResult, RemoteRunner } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';
import { candidatePath, type LbNodeJob, type VipCheck } from '../../common/lbJobs';
import * as sh from './remote';
import type { LbFileKind } from '../../common/lbRender';

export interface LbSetupDeps {
  runner: RemoteRunner;
}

export interface FileDiff {
  kind: LbFileKind;
  path: string;
  state: 'same' | 'differs' | 'absent';
  /** Unified diff, on the node's file, of what install would write. Empty when the same. */
  diff: string;
  /** The service has not loaded the file as it stands (haproxy and keepalived only). */
  reloadPending: boolean;
}

export interface NodeDiff {
  node: string;
  files: FileDiff[];
  nonlocalBind: string;
  haproxyRunning: boolean;
  /** Whether a run would change anything on this node. */
  changes: boolean;
  summary: string;
}

export interface LbStepResult {
  summary: string;
  alreadyDone: boolean;
}

const COMMAND_TIMEOUT_MS = 60_000;

function tail(text: string, lines = 6): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

export function createLbSetupActivities(deps: LbSetupDeps) {
  const { runner } = deps;

  async function run(target: SshTarget, command: string, stdin?: string): Promise<CommandResult> {
    return runner.run(target, command, {
      timeoutMs: COMMAND_TIMEOUT_MS,
      ...(stdin !== undefined ? { stdin } : {}),
      ...(activityContext() ? { signal: activityContext()!.cancellationSignal } : {}),
    });
  }

  /** A script that must succeed; its failure names the node and what it was doing. */
  async function must(
    job: { node: string; target: SshTarget; sudo: boolean },
    what: string,
    script: string,
    stdin?: string,
  ): Promise<string> {
    const r = await run(job.target, sh.privileged(job.sudo, script), stdin);
    if (r.exitCode !== 0) {
      const sudoRefused = job.sudo && /sudo: .*(password|not allowed)/i.test(r.stderr);
      throw ApplicationFailure.create({
        type: sudoRefused ? 'LbSudoRefused' : 'LbCommandFailed',
        message: `on LB ${job.node}, ${what} failed (exit ${r.exitCode ?? r.signal}): ${tail(r.stderr || r.stdout) || '(no output)'}`,
        nonRetryable: sudoRefused,
      });
    }
    return r.stdout;
  }

  async function haproxyRunning(job: LbNodeJob): Promise<boolean> {
    return (await must(job, 'looking for HAProxy', sh.haproxyRunningScript(job.haproxyPidFile))).trim() === 'running';
  }

  /** Read-only: what a run would change on the node. The dry run prints exactly this. */
  async function diffLoadBalancerNode(job: LbNodeJob): Promise<NodeDiff> {
    // Independent reads, so in parallel: a round trip per command adds up on a slow link.
    const [files, nonlocalBind, running] = await Promise.all([
      Promise.all(
        job.files.map(async (f): Promise<FileDiff> => {
          const r = await run(job.target, sh.privileged(job.sudo, sh.diffScript(f.path)), f.content);
          if (r.exitCode !== 0 && r.exitCode !== 1) {
            throw ApplicationFailure.create({
              type: 'LbCommandFailed',
              message: `on LB ${job.node}, comparing ${f.path} failed (exit ${r.exitCode ?? r.signal}): ${tail(r.stderr) || '(no output)'}`,
              nonRetryable: false,
            });
          }
          const absent = r.stdout.includes('(absent)');
          const pending =
            f.kind === 'sysctl'
              ? false
              : (await must(job, `reading ${sh.appliedStampPath(f.path)}`, sh.pendingScript(f.path))).trim() ===
                'pending';
          return {
            kind: f.kind,
            path: f.path,
            state: r.exitCode === 0 ? 'same' : absent ? 'absent' : 'differs',
            diff: r.stdout,
            reloadPending: pending || r.exitCode !== 0,
          };
        }),
      ),
      must(job, `reading ${sh.NONLOCAL_BIND}`, `sysctl -n ${sh.NONLOCAL_BIND}`).then((o) => o.trim()),
      haproxyRunning(job),
    ]);
    const notes = files.filter((f) => f.state !== 'same').map((f) => `${f.path} ${f.state}`);
    files
      .filter((f) => f.state === 'same' && f.reloadPending)
      .forEach((f) => notes.push(`${f.kind} has not loaded ${f.path}`));
    if (nonlocalBind !== '1') notes.push(`${sh.NONLOCAL_BIND} is ${nonlocalBind}`);
    if (!running) notes.push('HAProxy is not running');
    return {
      node: job.node,
      files,
      nonlocalBind,
      haproxyRunning: running,
      changes: notes.length > 0,
      summary: notes.length ? `${job.node}: ${notes.join('; ')}` : `${job.node}: nothing to change`,
    };
  }

  /**
   * `haproxy -c` on the node itself, against a candidate next to the live file: the node's own
   * HAProxy version, users and paths are what matter. Warnings pass but are reported.
   */
  async function validateHaproxyConfig(job: LbNodeJob): Promise<LbStepResult & { warnings: string[] }> {
    const f = job.files.find((x) => x.kind === 'haproxy')!;
    const candidate = candidatePath(f.path);
    await must(job, `writing ${candidate}`, sh.writeStdinScript(candidate), f.content);
    const r = await run(
      job.target,
      sh.privileged(job.sudo, `${job.commands.checkConfig}; rc=$?; rm -f ${candidate}; exit $rc`),
    );
    const out = `${r.stdout}\n${r.stderr}`;
    if (r.exitCode !== 0 || !out.includes('Configuration file is valid')) {
      const alerts = out
        .split('\n')
        .filter((l) => /\[(ALERT|WARNING)\]/.test(l))
        .map((l) => l.replace(/^\[(\w+)\]\s+\(\d+\) : /, '$1: '));
      throw ApplicationFailure.create({
        type: 'HaproxyConfigInvalid',
        message: `on LB ${job.node}, HAProxy refuses the rendered config (\`${job.commands.checkConfig}\` exit ${r.exitCode ?? r.signal}): ${alerts.join(' | ') || tail(out)}; nothing was installed`,
        nonRetryable: true,
      });
    }
    // A missing server-state file is expected before the first install, which creates it.
    const warnings = out
      .split('\n')
      .filter(
        (l) =>
          l.includes('[WARNING]') &&
          !(l.includes("Can't open global server state file") && l.includes(job.serverStateFile)),
      )
      .map((l) => l.replace(/^\[WARNING\]\s+\(\d+\) : /, ''));
    return {
      alreadyDone: false,
      warnings,
      summary: `${job.node}: haproxy -c accepts the rendered config${warnings.length ? ` with ${warnings.length} warning(s): ${warnings.join(' | ')}` : ''}`,
    };
  }

  /** Files with a dated backup, the server-state file if missing, ip_nonlocal_bind live. */
  async function installLoadBalancerFiles(
    job: LbNodeJob,
  ): Promise<LbStepResult & { installed: string[]; backups: string[] }> {
    const [outs, state, sysctl] = await Promise.all([
      Promise.all(job.files.map((f) => must(job, `installing ${f.path}`, sh.installScript(f.path), f.content))),
      must(job, `creating ${job.serverStateFile}`, sh.ensureStateFileScript(job.serverStateFile)).then((o) => o.trim()),
      must(job, `setting ${sh.NONLOCAL_BIND}`, sh.nonlocalBindScript()).then((o) => o.trim()),
    ]);
    const installed = job.files.filter((_, i) => outs[i]!.includes('installed')).map((f) => f.path);
    const backups = outs.map((o) => /^backup (.+)$/m.exec(o)?.[1]).filter((b): b is string => !!b);
    const done = [
      ...installed.map((p) => `installed ${p}`),
      ...(backups.length ? [`kept ${backups.join(', ')}`] : []),
      ...(state === 'created' ? [`created ${job.serverStateFile}`] : []),
      ...(sysctl === 'set' ? [`set ${sh.NONLOCAL_BIND}=1 live`] : []),
    ];
    return {
      installed,
      backups,
      alreadyDone: done.length === 0,
      summary: `${job.node}: ${done.length ? done.join('; ') : 'files already as rendered'}`,
    };
  }

  /**
   * `show servers state` into the server-state file, which the next HAProxy start reads. Run it
   * before every reload AND after every enable: a dump older than an enable would drain that
   * server again at the next reload.
   */
  async function saveServerState(input: {
    node: string;
    target: SshTarget;
    lb: LbTarget;
    sudo: boolean;
    serverStateFile: string;
  }): Promise<LbStepResult> {
    const rt = new HaproxyRuntime(input.lb, { runner });
    const { answers } = await rt.execute([{ text: 'show servers state' }]);
    const dump = `${answers[0]!.text}\n`;
    if (!/^1\n/.test(dump)) {
      throw ApplicationFailure.create({
        type: 'HaproxyStateDumpUnexpected',
        message: `on LB ${input.node}, \`show servers state\` did not start with its version line: ${JSON.stringify(dump.slice(0, 120))}`,
        nonRetryable: true,
      });
    }
    await must(input, `writing ${input.serverStateFile}`, sh.writeStdinScript(input.serverStateFile), dump);
    const servers = dump.split('\n').filter((l) => l && !l.startsWith('#')).length - 1;
    return {
      alreadyDone: false,
      summary: `${input.node}: saved the state of ${servers} server(s) to ${input.serverStateFile}`,
    };
  }

  async function waitForSocket(job: LbNodeJob, timeoutMs = 15_000): Promise<void> {
    const rt = new HaproxyRuntime(job.lb, { runner, timeoutMs: 5000 });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await rt.execute([{ text: 'show info' }]);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await pause(250);
      }
    }
  }

  /** Reloads HAProxy and restarts keepalived only where the file on disk is not what they run. */
  async function reloadLoadBalancerServices(job: LbNodeJob): Promise<LbStepResult> {
    const done: string[] = [];
    const haproxy = job.files.find((f) => f.kind === 'haproxy')!;
    const keepalived = job.files.find((f) => f.kind === 'keepalived')!;
    const [running, haproxyPending, keepalivedPending] = await Promise.all([
      haproxyRunning(job),
      must(job, 'reading the HAProxy stamp', sh.pendingScript(haproxy.path)).then((o) => o.trim() === 'pending'),
      must(job, 'reading the keepalived stamp', sh.pendingScript(keepalived.path)).then((o) => o.trim() === 'pending'),
    ]);
    if (haproxyPending || !running) {
      if (running) done.push((await saveServerState(job)).summary.replace(`${job.node}: `, ''));
      await must(job, `\`${job.commands.reloadHaproxy}\``, job.commands.reloadHaproxy);
      await waitForSocket(job);
      await must(job, 'recording the loaded HAProxy config', sh.stampScript(haproxy.path));
      done.push(running ? 'reloaded HAProxy' : 'started HAProxy');
    }
    if (keepalivedPending) {
      await must(job, `\`${job.commands.restartKeepalived}\``, job.commands.restartKeepalived);
      await must(job, 'recording the loaded keepalived config', sh.stampScript(keepalived.path));
      done.push('restarted keepalived');
    }
    return {
      alreadyDone: done.length === 0,
      summary: `${job.node}: ${done.length ? done.join('; ') : 'HAProxy and keepalived already run the installed files'}`,
    };
  }

  async function vipHolders(check: VipCheck): Promise<string[]> {
    const held = await Promise.all(
      check.members.map(async (m) => {
        const r = await run(m.target, sh.privileged(false, 'ip -o -4 addr show'));
        if (r.exitCode !== 0)
          throw ApplicationFailure.create({
            type: 'LbCommandFailed',
            message: `on LB ${m.node}, \`ip -o -4 addr show\` failed: ${tail(r.stderr)}`,
            nonRetryable: false,
          });
        return r.stdout
          .split('\n')
          .some((l) => new RegExp(`\\sinet ${check.vipAddress.replace(/\./g, '\\.')}/`).test(l))
          ? m.node
          : undefined;
      }),
    );
    return held.filter((n): n is string => !!n);
  }

  /** Exactly one node holds the VIP, for stableMs in a row, and the frontend answers through it. */
  async function verifyLoadBalancerVip(
    input: VipCheck & { from: { node: string; target: SshTarget } },
  ): Promise<LbStepResult & { holder: string; httpStatus: number }> {
    const started = Date.now();
    let holder: string | undefined;
    let since = 0;
    let seen: string[] = [];
    for (;;) {
      seen = await vipHolders(input);
      const now = Date.now();
      const one = seen.length === 1 ? seen[0] : undefined;
      if (one !== holder) since = now;
      holder = one;
      activityContext()?.heartbeat({ holders: seen });
      if (holder && now - since >= input.stableMs) break;
      if (now - started > input.timeoutMs) {
        throw ApplicationFailure.create({
          type: seen.length ? 'LbVipHeldTwice' : 'LbVipNotHeld',
          message: `VIP ${input.vipAddress} is held by ${seen.length ? seen.join(' and ') : 'no LB node'} after ${Math.round((now - started) / 1000)} s; check keepalived on ${input.members.map((m) => m.node).join(', ')}`,
          nonRetryable: true,
        });
      }
      await pause(250);
    }
    const r = await run(input.from.target, sh.privileged(false, sh.httpStatusScript(input.url)));
    const status = Number(r.stdout.trim());
    if (r.exitCode !== 0 || !(status >= 200 && status < 500)) {
      throw ApplicationFailure.create({
        type: 'LbVipFrontendNotAnswering',
        message: `from LB ${input.from.node}, ${input.url} (VIP held by ${holder}) ${r.exitCode !== 0 ? `did not answer: ${tail(r.stderr)}` : `answered HTTP ${status}`}`,
        nonRetryable: false,
      });
    }
    return {
      holder,
      httpStatus: status,
      alreadyDone: true,
      summary: `VIP ${input.vipAddress} is on ${holder}; ${input.url} answers HTTP ${status} from ${input.from.node}`,
    };
  }

  return {
    diffLoadBalancerNode,
    validateHaproxyConfig,
    installLoadBalancerFiles,
    saveServerState,
    reloadLoadBalancerServices,
    verifyLoadBalancerVip,
  };
}

export type LbSetupActivities = ReturnType<typeof createLbSetupActivities>;
