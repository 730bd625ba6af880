// The contract every remote effect goes through. One pool per worker process (see pool.ts).
import type { SshTarget } from '../../common/sshTarget';

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
  /**
   * Bytes kept from the end of stdout and of stderr for this command, instead of the pool's
   * limit: for a read that is parsed whole (a fleet's service list), never recorded.
   */
  outputLimitBytes?: number;
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
