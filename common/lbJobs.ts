// What `lb setup` does on one LB node, fully rendered: files, command lines and targets. Pure,
// so the workflow builds it in its own code and the CLI's --dry-run builds the very same thing.
import { renderCommand } from '../inventory/commands';
import type { Inventory } from '../inventory/schema';
import type { LbTarget } from './haproxy';
import { sshTargetFor, type SshTarget } from './sshTarget';
import { loadBalancerSettings, renderLoadBalancers, type RenderedFile } from './lbRender';

export interface LbNodeJob {
  node: string;
  target: SshTarget;
  /** The node's HAProxy runtime socket, for the server-state dump. */
  lb: LbTarget;
  /** Whether file writes and sysctl go through `sudo -n`. */
  sudo: boolean;
  files: RenderedFile[];
  serverStateFile: string;
  haproxyPidFile: string;
  commands: {
    /** Checks the candidate written next to the live file, never the live file itself. */
    checkConfig: string;
    reloadHaproxy: string;
    restartKeepalived: string;
  };
}

export interface VipCheck {
  vipAddress: string;
  /** Called from the node just set up: the frontend must answer through the VIP. */
  url: string;
  members: Array<{ node: string; target: SshTarget }>;
  /** One holder, unchanged for this long, before the answer counts (VRRP may still settle). */
  stableMs: number;
  timeoutMs: number;
}

/** Next to the live file, so `mv` onto it is atomic and the candidate's relative paths match. */
export function candidatePath(path: string): string {
  return `${path}.nova-upgrade-candidate`;
}

export function lbNodeJobs(inv: Inventory): LbNodeJob[] {
  const lb = loadBalancerSettings(inv);
  return renderLoadBalancers(inv).map(({ node, member, files }) => {
    const n = inv.nodes.find((x) => x.name === node)!;
    const target = sshTargetFor(inv, n);
    const haproxy = files.find((f) => f.kind === 'haproxy')!;
    const keepalived = files.find((f) => f.kind === 'keepalived')!;
    return {
      node,
      target,
      lb: { node, socket: n.lb!.socket, ...(n.lb!.socket.via === 'ssh' ? { ssh: target } : {}) },
      sudo: lb.sudo,
      files,
      serverStateFile: member.files.serverState,
      haproxyPidFile: member.files.haproxyPid,
      commands: {
        checkConfig: renderCommand('haproxyCheckConfig', inv.commands.haproxyCheckConfig, {
          config: candidatePath(haproxy.path),
          node,
        }),
        reloadHaproxy: renderCommand('haproxyReload', inv.commands.haproxyReload, {
          config: haproxy.path,
          pidFile: member.files.haproxyPid,
          node,
        }),
        restartKeepalived: renderCommand('keepalivedRestart', inv.commands.keepalivedRestart, {
          config: keepalived.path,
          node,
        }),
      },
    };
  });
}

export function vipCheck(inv: Inventory, jobs: LbNodeJob[]): VipCheck {
  const lb = loadBalancerSettings(inv);
  return {
    vipAddress: lb.vipAddress,
    url: `http://${lb.vipAddress}:${lb.frontendPort}/`,
    members: jobs.map((j) => ({ node: j.node, target: j.target })),
    // A keepalived just started stays BACKUP for 3 advert intervals plus skew (< 1 interval)
    // before it claims the VIP; a holder unchanged for longer is the one VRRP settled on.
    stableMs: lb.advertIntervalSeconds * 4000,
    timeoutMs: lb.advertIntervalSeconds * 8000 + 15_000,
  };
}
