// Where and as whom a node is reached over SSH, derived from the inventory. Pure: the workflow
// puts it into activity inputs and the activities connect with it (reading the ssh config there).
import type { Inventory, Node } from '../inventory/schema';

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
