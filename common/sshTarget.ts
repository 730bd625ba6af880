// Where and as whom a node is reached over SSH, derived from the inventory. Pure: the workflow
// puts it into activity inputs and the activities connect with it.
import type { Inventory, Node } from '../inventory/schema';

export interface SshTarget {
  /** Inventory node name: every error and audit record names it. */
  node: string;
  host: string;
  port: number;
  username: string;
  privateKeyPath: string;
  knownHostsPath: string;
  connectTimeoutMs: number;
}

export function sshTargetFor(inv: Pick<Inventory, 'ssh'>, node: Node): SshTarget {
  return {
    node: node.name,
    host: node.address,
    port: node.sshPort,
    username: node.sshUser,
    privateKeyPath: inv.ssh.privateKeyPath,
    knownHostsPath: inv.ssh.knownHostsPath,
    connectTimeoutMs: inv.ssh.connectTimeoutSeconds * 1000,
  };
}
