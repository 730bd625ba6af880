// The contract every remote effect goes through. One pool per worker process (see pool.ts).
import type { Inventory, Node } from '../../inventory/schema';

export interface SshTarget {
  /** Inventory node name: every error and audit record names it. */
  node: string;
  /** The name given to ssh: an ssh config Host alias, a host name or an address. */
  host: string;
  port: number;
  username: string;
  /** A key the inventory names, tried before the ssh config's IdentityFile keys (like ssh -i). */
  privateKeyPath?: string;
  /** Replaces the ssh config's UserKnownHostsFile (like ssh -o UserKnownHostsFile=). */
  knownHostsPath?: string;
  connectTimeoutMs: number;
  /**
   * The OpenSSH client config to read on the worker: a path, `none`, or absent for ssh's own
   * default files (~/.ssh/config, then /etc/ssh/ssh_config).
   */
  sshConfig?: string;
  /**
   * `port` and `username` listed here are defaults only, used when the ssh config names none;
   * the others are the inventory's own and beat the config, as ssh's -p and -l do.
   */
  defaults?: Array<'port' | 'username'>;
}

/** Pure (the workflow calls it): the inventory's SSH settings for one node. */
export function sshTargetFor(inv: Pick<Inventory, 'ssh'>, node: Node): SshTarget {
  const defaults: Array<'port' | 'username'> = [];
  if (node.sshPortIsDefault) defaults.push('port');
  if (node.sshUserIsDefault) defaults.push('username');
  const privateKeyPath = node.sshPrivateKeyPath ?? inv.ssh.privateKeyPath;
  return {
    node: node.name,
    host: node.sshHost ?? node.address,
    port: node.sshPort,
    username: node.sshUser,
    ...(privateKeyPath !== undefined ? { privateKeyPath } : {}),
    ...(inv.ssh.knownHostsPath !== undefined ? { knownHostsPath: inv.ssh.knownHostsPath } : {}),
    connectTimeoutMs: inv.ssh.connectTimeoutSeconds * 1000,
    ...(inv.ssh.config !== undefined ? { sshConfig: inv.ssh.config } : {}),
    ...(defaults.length ? { defaults } : {}),
  };
}

/** What the audit log keeps of one remote command. */
export interface CommandRecord {
  node: string;
  command: string;
  exitCode: number | null;
  signal?: string;
  durationMs: number;
  /** Set when the command was found already running or finished and was not started again. */
  reattached?: boolean;
}

export interface CommandResult extends CommandRecord {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  stdin?: string;
  signal?: AbortSignal;
}

export interface DetachedOptions {
  /** Unique per workflow, step and operator retry; an activity retry reuses it to reattach. */
  key: string;
  command: string;
  /** Remote directory for run state; may start with $HOME. */
  stateDir: string;
  pollMs?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called at every poll with the output's tail, for heartbeats and progress. */
  onProgress?: (tail: string) => void;
  /**
   * Whether an abort of `signal` kills the remote run (true) or only stops waiting for it
   * (false, so a later attempt reattaches). Default: kill, except for Temporal's
   * WORKER_SHUTDOWN, TIMED_OUT, PAUSED and RESET cancellations (see detached.ts).
   */
  killOnAbort?: (reason: unknown) => boolean;
}

/** Runs commands on nodes. Activities depend on this interface, never on ssh2 directly. */
export interface RemoteRunner {
  run(target: SshTarget, command: string, opts?: RunOptions): Promise<CommandResult>;
  runDetached(target: SshTarget, opts: DetachedOptions): Promise<CommandResult>;
}
