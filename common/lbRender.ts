// haproxy.cfg, keepalived.conf and the sysctl drop-in of one LB node, rendered from the
// inventory with the seed's settings as defaults. Pure and deterministic: the workflow renders
// in its own code, so the history records exactly what was installed.
import type { Inventory, LbSocket, LoadBalancerMember, LoadBalancerSettings } from '../inventory/schema';

export type LbFileKind = 'haproxy' | 'keepalived' | 'sysctl';

export interface RenderedFile {
  kind: LbFileKind;
  path: string;
  content: string;
}

export interface LbNodeConfig {
  node: string;
  member: LoadBalancerMember;
  files: RenderedFile[];
}

export class LoadBalancerSetupError extends Error {
  override name = 'LoadBalancerSetupError';
}

/** The section `lb setup` needs, or a sentence saying how to add it. */
export function loadBalancerSettings(inv: Inventory): LoadBalancerSettings {
  if (!inv.loadBalancer) {
    throw new LoadBalancerSetupError(
      "the inventory has no loadBalancer section; add one (`loadBalancer: {}` takes the seed's defaults: interface eth0, virtual_router_id 50, advert_int 1)",
    );
  }
  return inv.loadBalancer;
}

const header = (inv: Inventory, node: string, comment: string) =>
  [
    `${comment} Rendered by nova-upgrade (lb setup) for LB node ${node} of cloud ${inv.cloud}.`,
    `${comment} Edits here are replaced by the next \`nova-upgrade lb setup\`; change the inventory instead.`,
  ].join('\n');

function statsSocket(socket: LbSocket): string {
  // The tool drains and enables servers through this socket, which needs level admin.
  const where = socket.via === 'tcp' ? `ipv4@${socket.host}:${socket.port}` : socket.path;
  return `stats socket ${where} mode 600 level admin`;
}

export function renderHaproxyConfig(inv: Inventory, node: string): string {
  const lb = loadBalancerSettings(inv);
  const member = memberOf(lb, node);
  const socket = inv.nodes.find((n) => n.name === node)!.lb!.socket;
  const servers = lb.servers.map(
    (s) => `    server ${s.name} ${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port} check`,
  );
  return [
    header(inv, node, '#'),
    'global',
    '    chroot /var/lib/haproxy',
    '    user haproxy',
    '    group haproxy',
    '    daemon',
    `    log ${lb.log}`,
    `    pidfile ${member.files.haproxyPid}`,
    `    ${statsSocket(socket)}`,
    '    stats timeout 2m',
    '    maxconn 4000',
    // Admin state (a drained server) survives a reload only through this file.
    `    server-state-file ${member.files.serverState}`,
    '',
    'defaults',
    '    log global',
    '    maxconn 8000',
    '    mode http',
    '    option httplog',
    '    option redispatch',
    '    retries 3',
    '    timeout http-request 10s',
    '    timeout queue 1m',
    '    timeout connect 10s',
    '    timeout client 1m',
    '    timeout server 1m',
    '    timeout check 10s',
    '    load-server-state-from-file global',
    '',
    `frontend ${lb.frontendName}`,
    `    bind ${lb.vipAddress}:${lb.frontendPort}`,
    `    default_backend ${inv.haproxy.backend}`,
    '',
    `backend ${inv.haproxy.backend}`,
    '    balance roundrobin',
    // A TCP check stays green while Apache or uwsgi accept connections with nova down.
    `    option httpchk GET ${lb.healthCheck.path}`,
    '    http-check expect status 200',
    `    default-server inter ${Math.round(lb.healthCheck.intervalSeconds * 1000)}ms`,
    ...servers,
    '',
  ].join('\n');
}

/**
 * A failing check takes `weight` off the node's effective priority; it must exceed the spread of
 * priorities so that any node with a live HAProxy outranks every node without one.
 */
export function trackWeight(lb: LoadBalancerSettings): number {
  const ps = lb.members.map((m) => m.priority);
  return Math.max(...ps) - Math.min(...ps) + 1;
}

export function renderKeepalivedConfig(inv: Inventory, node: string): string {
  const lb = loadBalancerSettings(inv);
  const member = memberOf(lb, node);
  const top = Math.max(...lb.members.map((m) => m.priority));
  return [
    header(inv, node, '#'),
    'global_defs {',
    `    router_id ${node}`,
    // Debian has no keepalived_script user; root is needed to see HAProxy's process anyway.
    '    script_user root',
    '    enable_script_security',
    '}',
    '',
    // This node's HAProxy only: `killall -0 haproxy` also sees other nodes' HAProxy where the
    // PID namespace is shared (containers, network namespaces, a test rig).
    'vrrp_script haproxy_alive {',
    `    script "/usr/bin/pgrep -F ${member.files.haproxyPid} haproxy"`,
    `    interval ${Math.max(1, lb.advertIntervalSeconds * 2)}`,
    `    weight ${trackWeight(lb)}`,
    '}',
    '',
    `vrrp_instance nova_api_vip {`,
    `    state ${member.priority === top ? 'MASTER' : 'BACKUP'}`,
    `    interface ${member.interface}`,
    `    virtual_router_id ${lb.virtualRouterId}`,
    `    priority ${member.priority}`,
    `    advert_int ${lb.advertIntervalSeconds}`,
    '    virtual_ipaddress {',
    `        ${lb.vipAddress}/${lb.vipPrefixLength} dev ${member.interface}`,
    '    }',
    '    track_script {',
    '        haproxy_alive',
    '    }',
    '}',
    '',
  ].join('\n');
}

export function renderSysctl(inv: Inventory, node: string): string {
  return [
    header(inv, node, '#'),
    '# HAProxy on the backup binds the VIP before keepalived gives it the address.',
    'net.ipv4.ip_nonlocal_bind = 1',
    '',
  ].join('\n');
}

function memberOf(lb: LoadBalancerSettings, node: string): LoadBalancerMember {
  const m = lb.members.find((x) => x.node === node);
  if (!m)
    throw new LoadBalancerSetupError(
      `node ${node} is not an LB node of this inventory (LB nodes: ${lb.members.map((x) => x.node).join(', ')})`,
    );
  return m;
}

/** Every LB node's files, backups before the master so the VIP always has a holder. */
export function renderLoadBalancers(inv: Inventory): LbNodeConfig[] {
  const lb = loadBalancerSettings(inv);
  return [...lb.members]
    .sort((a, b) => a.priority - b.priority)
    .map((member) => ({
      node: member.node,
      member,
      files: [
        { kind: 'haproxy' as const, path: member.files.haproxyConfig, content: renderHaproxyConfig(inv, member.node) },
        {
          kind: 'keepalived' as const,
          path: member.files.keepalivedConfig,
          content: renderKeepalivedConfig(inv, member.node),
        },
        { kind: 'sysctl' as const, path: member.files.sysctl, content: renderSysctl(inv, member.node) },
      ],
    }));
}
