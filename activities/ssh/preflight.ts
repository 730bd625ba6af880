// Before anything changes: can the worker log in to each node the way the ssh config says, and
// does sudo work there without a password? A sudo that would prompt is found here, not halfway
// through the window, and refused with a sentence naming the node: nobody is there to type it.
import { ApplicationFailure } from '@temporalio/common';
import { cancellationSignal, heartbeat, mapLimit } from '../common';
import { toRecord } from '../nova/common';
import { describeRoute } from './connect';
import { SshFailureType } from './errors';
import { SshConfigError } from './sshConfig';
import type { CommandRecord, RemoteRunner } from './types';
import { refusalSentence, type NodeAccessRefusal } from '../../common/nodeAccess';
import type { SshTarget } from '../../common/sshTarget';

export interface NodeAccessInput {
  target: SshTarget;
  /** Whether the node's commands use sudo (see nodesUsingSudo in ./sudo). */
  sudo: boolean;
  timeoutMs?: number;
}

export interface NodeAccessResult {
  node: string;
  /** `user@host:port`, jump hosts first, as the ssh config resolved them on the worker. */
  route: string;
  /** Who the login is, as the node says (`id -un`). */
  loginUser: string;
  sudo: 'not used' | 'works without a password';
  summary: string;
  commands: CommandRecord[];
}

export interface NodeAccessChunkResult {
  summary: string;
  /** Nodes logged in to (and sudo checked where used). */
  checked: number;
  sudo: number;
  loginUsers: string[];
  refused: NodeAccessRefusal[];
  commands: CommandRecord[];
}

export const SUDO_CHECK = 'sudo -n true';

/** Logins at once when warming a batch's connections; the pool's own handshake cap still holds. */
const WARM_AT_ONCE = 16;

function sudoRefusal(node: string, user: string, exitCode: number | null, stderr: string): ApplicationFailure {
  const said = stderr.trim().split('\n').slice(-2).join(' ') || `exit code ${exitCode}`;
  let message: string;
  if (exitCode === 127 || /command not found|not found/.test(said)) {
    message = `sudo is not installed on ${node}, but the inventory's commands for ${node} use it: install sudo there, log in as root, or change those commands`;
  } else if (/password is required|password/i.test(said)) {
    message =
      `sudo on ${node} asks ${user} for a password (\`${SUDO_CHECK}\` said "${said}"); nova-upgrade never types passwords: ` +
      `give ${user} password-less sudo there (NOPASSWD in sudoers), or log in as root`;
  } else if (/tty|terminal/i.test(said)) {
    message = `sudo on ${node} wants a terminal (\`${SUDO_CHECK}\` said "${said}"): drop "requiretty" for ${user} in sudoers there`;
  } else {
    message = `sudo on ${node} does not work for ${user} without a password (\`${SUDO_CHECK}\` said "${said}"): give ${user} password-less sudo there, or log in as root`;
  }
  return ApplicationFailure.create({
    type: SshFailureType.SudoNeedsPassword,
    nonRetryable: true,
    message,
    details: [{ node, user, exitCode, stderr: said }],
  });
}

export function createSshPreflightActivities(deps: { runner: RemoteRunner }) {
  /** Logs in to one node and, if its commands use sudo, checks `sudo -n true`. Changes nothing. */
  async function checkNodeAccess(input: NodeAccessInput): Promise<NodeAccessResult> {
    const { target } = input;
    let route: string;
    try {
      route = describeRoute(target);
    } catch (err) {
      if (err instanceof SshConfigError) {
        throw ApplicationFailure.create({
          type: SshFailureType.ConfigRefused,
          nonRetryable: true,
          message: `cannot connect to ${target.node}: ${err.message}`,
        });
      }
      throw err;
    }
    const commands: CommandRecord[] = [];
    const opts = { timeoutMs: input.timeoutMs, signal: cancellationSignal() };
    const who = await deps.runner.run(target, 'id -un', opts);
    commands.push(toRecord(who));
    if (who.exitCode !== 0)
      throw new Error(
        `on ${target.node}, \`id -un\` exited ${who.exitCode ?? who.signal}: ${who.stderr.trim() || '(no output)'}`,
      );
    const loginUser = who.stdout.trim();
    if (!input.sudo) {
      return {
        node: target.node,
        route,
        loginUser,
        sudo: 'not used',
        summary: `${target.node}: logged in as ${loginUser} via ${route}; its commands do not use sudo`,
        commands,
      };
    }
    const sudo = await deps.runner.run(target, SUDO_CHECK, opts);
    commands.push(toRecord(sudo));
    if (sudo.exitCode !== 0) throw sudoRefusal(target.node, loginUser, sudo.exitCode, sudo.stderr);
    return {
      node: target.node,
      route,
      loginUser,
      sudo: 'works without a password',
      summary: `${target.node}: logged in as ${loginUser} via ${route}; sudo works without a password`,
      commands,
    };
  }

  /**
   * Checks every node, `concurrency` at a time, and lets each check settle: every refusal is
   * named, not the first. A hung node costs its own command timeout, not the activity's heartbeat.
   */
  async function checkEachNode(
    nodes: NodeAccessInput[],
    concurrency = 16,
  ): Promise<{ results: NodeAccessResult[]; refused: NodeAccessRefusal[]; retryable: boolean }> {
    const queue = [...nodes];
    const results: NodeAccessResult[] = [];
    const refused: NodeAccessRefusal[] = [];
    let retryable = false;
    const progress = () => ({ checked: results.length + refused.length, of: nodes.length });
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        try {
          results.push(await checkNodeAccess(next));
        } catch (err) {
          if (!(err instanceof ApplicationFailure && err.nonRetryable)) retryable = true;
          const type = err instanceof ApplicationFailure && err.type ? err.type : undefined;
          refused.push({
            node: next.target.node,
            error: err instanceof Error ? err.message : String(err),
            ...(type ? { type } : {}),
          });
        }
        heartbeat(progress());
      }
    };
    const beat = setInterval(() => heartbeat(progress()), 2000);
    try {
      await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, nodes.length)) }, worker));
    } finally {
      clearInterval(beat);
    }
    return { results, refused, retryable };
  }

  /**
   * Every node at once, a bounded number at a time, as one activity: a fleet's preflight costs
   * the parent's history one activity, not one per node. Every refusal is named, not the first.
   */
  async function checkNodesAccess(input: { nodes: NodeAccessInput[]; concurrency?: number }): Promise<{
    summary: string;
    /** Each node's route, login and sudo; its commands are in the flat list below, once. */
    results: Omit<NodeAccessResult, 'commands'>[];
    commands: CommandRecord[];
  }> {
    const { results, refused: refusals, retryable } = await checkEachNode(input.nodes, input.concurrency);
    const refused = refusals.map((r) => `${r.error}${r.type ? ` [${r.type}]` : ''}`);
    if (refused.length) {
      const message = `${refused.length} of ${input.nodes.length} node(s) cannot be used: ${refused.sort().join('; ')}`;
      // A login that may work on the next try (a node still booting) is retried; a refusal is not.
      throw ApplicationFailure.create({ type: SshFailureType.NodeAccessRefused, nonRetryable: !retryable, message });
    }
    const sudo = results.filter((r) => r.sudo !== 'not used').length;
    return {
      summary: `logged in to all ${results.length} node(s); sudo works without a password on the ${sudo} that use it`,
      // Every node's commands once: with them in each node's result too, this result was the
      // largest payload of a 100-compute upgrade (47.6 KiB, ~480 bytes a node; docs/fleet-bench.md).
      results: results.sort((a, b) => a.node.localeCompare(b.node)).map(({ commands: _c, ...r }) => r),
      commands: results.flatMap((r) => r.commands),
    };
  }

  /**
   * One chunk of a fleet's preflight (since `node-access-in-chunks`): the workflow sends at most
   * NODE_ACCESS_CHUNK nodes a call, a few calls at once, so that no input or result grows with the
   * fleet. The result carries counts and the refusals, each naming its node and what failed; the
   * commands once per command and exit code (the audit log's record, nodes counted, not listed).
   * A failure that may pass on a retry (a node still booting) fails the call, for Temporal to retry.
   */
  async function checkNodesAccessChunk(input: {
    nodes: NodeAccessInput[];
    concurrency?: number;
  }): Promise<NodeAccessChunkResult> {
    const { results, refused, retryable } = await checkEachNode(input.nodes, input.concurrency);
    refused.sort((a, b) => a.node.localeCompare(b.node));
    if (retryable)
      // A login that may work on the next try (a node still booting): the call fails for Temporal
      // to retry, every node's refusal in its details for the workflow to name.
      throw ApplicationFailure.create({
        type: SshFailureType.NodeAccessRefused,
        nonRetryable: false,
        message: refusalSentence(refused, input.nodes.length),
        details: [{ refused }],
      });
    const commands = new Map<string, CommandRecord & { nodes: number }>();
    for (const c of results.flatMap((r) => r.commands)) {
      const key = `${c.command}\u0000${c.exitCode}`;
      const seen = commands.get(key);
      if (seen) {
        seen.nodes += 1;
        seen.durationMs = Math.max(seen.durationMs, c.durationMs);
      } else commands.set(key, { ...c, nodes: 1 });
    }
    const names = input.nodes.map((n) => n.target.node);
    const span = names.length > 1 ? `${names[0]} … ${names[names.length - 1]}` : (names[0] ?? 'none');
    const sudo = results.filter((r) => r.sudo !== 'not used').length;
    const users = [...new Set(results.map((r) => r.loginUser))].sort();
    return {
      summary: `logged in to ${results.length} of ${input.nodes.length} node(s) (${span}) as ${users.join(', ') || 'nobody'}; sudo works without a password on the ${sudo} that use it${refused.length ? `; ${refused.length} refused` : ''}`,
      checked: results.length,
      sudo,
      loginUsers: users,
      refused,
      // The audit log's rows: one per command and exit code, its node the chunk's span, its
      // duration the slowest node's.
      commands: [...commands.values()].map(({ nodes, ...c }) => ({ ...c, node: `${nodes} node(s) of ${span}` })),
    };
  }

  /**
   * Logs in to the next batch's nodes while a batch runs, so that the next batch's first
   * commands find their connections open (the pool keeps them idle for its idle timeout). At
   * 1,000 virtual computes each batch met 50 nodes it had no connection to, and its first reads
   * took 4.2 s for 0.4 s of commands, the handshakes queuing 8 at a time (bench/fleet.ts, the
   * batch profile). Nothing here is a check: a node that does not answer is counted and left to
   * its batch, whose own steps decide; this never fails.
   */
  async function openConnections(input: { targets: SshTarget[]; timeoutMs: number }): Promise<{
    summary: string;
    opened: number;
    failed: number;
  }> {
    const signal = cancellationSignal();
    const ok = await mapLimit(input.targets, WARM_AT_ONCE, (target) =>
      deps.runner.run(target, 'true', { timeoutMs: input.timeoutMs, signal }).then(
        (r) => r.exitCode === 0,
        () => false,
      ),
    );
    const opened = ok.filter(Boolean).length;
    const failed = ok.length - opened;
    return {
      summary: `logged in to ${opened} of ${ok.length} node(s) ahead of their batch${failed ? `; ${failed} did not answer (their batch decides)` : ''}`,
      opened,
      failed,
    };
  }

  return { checkNodeAccess, checkNodesAccess, checkNodesAccessChunk, openConnections };
}
