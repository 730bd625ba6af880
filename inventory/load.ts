import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { templateProblems, type CommandName } from './commands';
import { DEVSTACK_VENV, KOLLA_CONFIG_DIR, resolveProfile, type Profile } from './profiles';
import {
  inventorySchema,
  IPV4,
  type Inventory,
  type InventoryInput,
  type LoadBalancerSettings,
  type Node,
} from './schema';

export class InventoryError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(
      `${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the inventory:\n  - ${problems.join('\n  - ')}`,
    );
    this.name = 'InventoryError';
  }
}

/** Names a path the way an operator reads it: `nodes[1] (apicomp).api.haproxyServer`. */
function describePath(path: readonly PropertyKey[], raw: unknown): string {
  let out = '';
  let cursor: unknown = raw;
  for (const key of path) {
    if (typeof key === 'number') {
      out += `[${key}]`;
      cursor = Array.isArray(cursor) ? cursor[key] : undefined;
      const name = cursor && typeof cursor === 'object' ? (cursor as { name?: unknown }).name : undefined;
      if (typeof name === 'string') out += ` (${name})`;
    } else {
      out += out ? `.${String(key)}` : String(key);
      cursor = cursor && typeof cursor === 'object' ? (cursor as Record<string, unknown>)[String(key)] : undefined;
    }
  }
  return out || '(top level)';
}

function zodProblems(error: z.ZodError, raw: unknown): string[] {
  return error.issues.map((issue) => {
    const where = describePath(issue.path, raw);
    if (issue.code === 'unrecognized_keys')
      return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${where}: ${issue.message}`;
  });
}

function uniq<T>(items: T[]): T[] {
  return [...new Set(items)];
}

type Parsed = z.output<typeof inventorySchema>;

/** host:port of an http(s) URL, with the scheme's port when the URL names none. */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80,
  };
}

/**
 * The loadBalancer section with its defaults resolved. Checked only when the section is there,
 * so an inventory written for the upgrade alone is judged exactly as before.
 */
function resolveLoadBalancer(
  inv: Parsed,
  nodes: Node[],
  problems: string[],
  where: (i: number) => string,
): LoadBalancerSettings | undefined {
  const lb = inv.loadBalancer;
  if (!lb) return undefined;
  const vip = hostPort(inv.vip.url);
  if (!lb.vipAddress && !IPV4.test(vip.host))
    problems.push(
      `vip.url: host "${vip.host}" is not an IPv4 address, so keepalived cannot hold it; set loadBalancer.vipAddress`,
    );
  const frontendPort = lb.frontendPort ?? vip.port;
  if (lb.frontendPort !== undefined && lb.frontendPort !== vip.port)
    problems.push(
      `loadBalancer.frontendPort: ${lb.frontendPort} differs from the port of vip.url (${vip.port}); the probe and keystone would call a port HAProxy does not serve`,
    );

  const lbIndexes = nodes.map((n, i) => (n.lb ? i : -1)).filter((i) => i >= 0);
  const priorities = new Map<number, number>();
  const members = lbIndexes.map((i, rank) => {
    const own = inv.nodes[i]!.lb!;
    const priority = own.priority ?? 101 - rank;
    const before = priorities.get(priority);
    if (before !== undefined)
      problems.push(
        `${where(i)}.lb.priority: ${priority} is already the keepalived priority of ${where(before)}; equal priorities leave the VIP's owner to chance`,
      );
    else priorities.set(priority, i);
    if (priority < 1)
      problems.push(
        `${where(i)}.lb.priority: the default priority ${priority} is below 1; give each LB node a priority`,
      );
    return {
      node: nodes[i]!.name,
      priority,
      interface: own.interface ?? lb.interface,
      files: { ...lb.files, ...Object.fromEntries(Object.entries(own.files ?? {}).filter(([, v]) => v !== undefined)) },
    };
  });

  // HAProxy would start with two servers on one address and count every request twice.
  const addresses = new Map<string, number>();
  const servers: LoadBalancerSettings['servers'] = [];
  nodes.forEach((n, i) => {
    if (!n.api) return;
    const { host, port } = hostPort(n.api.url);
    servers.push({ name: n.api.haproxyServer, node: n.name, host, port });
    if (port < 1 || port > 65535) problems.push(`${where(i)}.api.url: port ${port} is not a TCP port, 1 to 65535`);
    const key = `${host}:${port}`;
    const before = addresses.get(key);
    if (before !== undefined)
      problems.push(
        `${where(i)}.api.url: ${key} is already the address of HAProxy server "${nodes[before]!.api!.haproxyServer}" (${where(before)}); each server needs its own address`,
      );
    else addresses.set(key, i);
    n.services.forEach((s, j) => {
      if (s.haproxyServer && s.haproxyServer !== n.api!.haproxyServer)
        problems.push(
          `${where(i)}.services[${j}].haproxyServer: lb setup cannot place server "${s.haproxyServer}": only a node's api.url gives a server its address`,
        );
    });
  });

  return {
    vipAddress: lb.vipAddress ?? vip.host,
    vipPrefixLength: lb.vipPrefixLength,
    virtualRouterId: lb.virtualRouterId,
    advertIntervalSeconds: lb.advertIntervalSeconds,
    frontendName: lb.frontendName,
    frontendPort,
    log: lb.log,
    healthCheck: lb.healthCheck,
    sudo: lb.sudo,
    members,
    servers,
  };
}

/**
 * The profile the inventory names, with its own section. A section for another profile is
 * refused rather than ignored: it says the operator meant something this inventory does not do.
 */
function pickProfile(inv: Parsed, problems: string[]): Profile {
  if (inv.devstack && inv.profile !== 'devstack')
    problems.push(`devstack: read only with profile: devstack (this inventory says profile: ${inv.profile})`);
  if (inv.kolla && inv.profile !== 'kolla')
    problems.push(`kolla: read only with profile: kolla (this inventory says profile: ${inv.profile})`);
  if (inv.profile !== 'kolla') return resolveProfile(inv.profile);
  if (!inv.kolla) {
    problems.push(
      'kolla: profile kolla needs the new images: kolla.images (registry/namespace, as docker_registry/docker_namespace) and kolla.tag (openstack_tag of the target release)',
    );
    return resolveProfile('kolla', {
      engine: 'docker',
      images: 'registry/namespace',
      tag: 'tag',
      configDir: KOLLA_CONFIG_DIR,
    });
  }
  return resolveProfile('kolla', inv.kolla);
}

/** Validates an already-parsed document; the single entry point for YAML, JSON and tests. */
export function validateInventory(raw: unknown, source = 'inventory'): Inventory {
  const parsed = inventorySchema.safeParse(raw);
  if (!parsed.success) {
    // Template mistakes are independent of the schema's; report them in the same pass.
    const commands = raw && typeof raw === 'object' ? (raw as { commands?: unknown }).commands : undefined;
    const more = commands && typeof commands === 'object' ? templateProblems(commands as Record<string, unknown>) : [];
    throw new InventoryError(source, [...zodProblems(parsed.error, raw), ...more]);
  }
  const inv = parsed.data;
  const problems: string[] = [];
  const where = (i: number) => `nodes[${i}] (${inv.nodes[i]!.name})`;
  const profile = pickProfile(inv, problems);

  const nodes: Node[] = inv.nodes.map((n, i) => {
    const services = n.services ?? uniq(n.roles).flatMap((r) => profile.services[r]);
    if (n.address === undefined && n.sshHost === undefined)
      problems.push(`${where(i)}.address: give the node's address, or sshHost (a Host alias of the ssh config)`);
    const address = n.address ?? n.sshHost ?? '';
    if (n.roles.includes('api') && n.address === undefined && n.sshHost !== undefined && n.api?.url === undefined) {
      problems.push(
        `${where(i)}.api.url: the node is named only by its ssh alias "${n.sshHost}", which the worker cannot call nova-api at; give api.url or address`,
      );
    }
    const api = n.roles.includes('api')
      ? {
          haproxyServer: n.api?.haproxyServer ?? n.name,
          url: n.api?.url ?? `http://${address.includes(':') ? `[${address}]` : address}:8774`,
        }
      : undefined;
    const port = n.sshPort ?? inv.ssh.port;
    const user = n.sshUser ?? inv.ssh.user;
    return {
      name: n.name,
      address,
      sshPort: port ?? 22,
      sshUser: user ?? 'root',
      ...(n.sshHost !== undefined ? { sshHost: n.sshHost } : {}),
      ...(n.sshPrivateKeyPath !== undefined ? { sshPrivateKeyPath: n.sshPrivateKeyPath } : {}),
      ...(port === undefined ? { sshPortIsDefault: true } : {}),
      ...(user === undefined ? { sshUserIsDefault: true } : {}),
      roles: uniq(n.roles),
      novaHost: n.novaHost ?? n.name,
      ...(api ? { api } : {}),
      ...(n.lb ? { lb: { socket: n.lb.socket } } : {}),
      services,
      configFiles: n.configFiles ?? uniq(n.roles.flatMap((r) => profile.configFiles[r])),
      ...(n.cell !== undefined ? { cell: n.cell } : {}),
      ...(n.az !== undefined ? { az: n.az } : {}),
      ...(n.aggregate !== undefined ? { aggregate: n.aggregate } : {}),
    };
  });

  const seen = new Map<string, number>();
  nodes.forEach((n, i) => {
    const before = seen.get(n.name);
    if (before !== undefined) problems.push(`${where(i)}.name: "${n.name}" is already used by nodes[${before}]`);
    else seen.set(n.name, i);
    if (n.roles.includes('lb') && !n.lb)
      problems.push(`${where(i)}.lb.socket: an lb node must say how its HAProxy runtime socket is reached`);
    if (!n.roles.includes('lb') && n.lb)
      problems.push(`${where(i)}.lb: only a node with the lb role has an HAProxy socket`);
    if (!n.roles.includes('api') && inv.nodes[i]!.api)
      problems.push(`${where(i)}.api: only a node with the api role serves nova-api`);
  });
  const servers = new Map<string, number>();
  nodes.forEach((n, i) => {
    const names = [n.api?.haproxyServer, ...n.services.map((s) => s.haproxyServer)].filter((s): s is string => !!s);
    for (const s of uniq(names)) {
      const before = servers.get(s);
      if (before !== undefined)
        problems.push(
          `${where(i)}.api.haproxyServer: server "${s}" is already used by nodes[${before}] (${nodes[before]!.name})`,
        );
      else servers.set(s, i);
    }
  });
  const addresses = new Map<string, number>();
  nodes.forEach((n, i) => {
    // An alias is resolved on the worker; two nodes on one alias are one host all the same.
    const key = n.sshHost !== undefined ? `ssh host ${n.sshHost}` : `${n.address}:${n.sshPort}`;
    const before = addresses.get(key);
    if (before !== undefined)
      problems.push(`${where(i)}.address: ${key} is already used by nodes[${before}] (${nodes[before]!.name})`);
    else addresses.set(key, i);
  });

  const controllers = nodes.filter((n) => n.roles.includes('controller'));
  if (controllers.length !== 1)
    problems.push(
      `nodes: exactly one node must have the controller role (found ${controllers.length}${controllers.length ? `: ${controllers.map((c) => c.name).join(', ')}` : ''})`,
    );
  const apiNodes = nodes.filter((n) => n.api);
  if (apiNodes.length < 2)
    problems.push(
      `nodes: a zero-downtime upgrade needs at least two nodes with the api role (found ${apiNodes.length})`,
    );
  if (!nodes.some((n) => n.roles.includes('lb')))
    problems.push('nodes: at least one node must have the lb role (the HAProxy in front of nova-api)');
  const tempestHost = inv.tempest.host ?? controllers[0]?.name ?? nodes[0]!.name;
  if (!seen.has(tempestHost)) problems.push(`tempest.host: "${tempestHost}" is not a node in this inventory`);
  const computeHosts = new Set(nodes.filter((n) => n.roles.includes('compute')).map((n) => n.novaHost));
  inv.compute.exclude.forEach((h, i) => {
    if (!computeHosts.has(h) && !seen.has(h))
      problems.push(`compute.exclude[${i}]: "${h}" is neither a compute node nor a nova host in this inventory`);
  });

  const commands = {
    ...profile.commands,
    ...Object.fromEntries(Object.entries(inv.commands).filter(([, v]) => v !== undefined)),
  } as Record<CommandName, string>;
  problems.push(...templateProblems(commands, profile.name));

  const loadBalancer = resolveLoadBalancer(inv, nodes, problems, where);

  if (problems.length) throw new InventoryError(source, problems);
  const { loadBalancer: _section, devstack: _devstack, ...rest } = inv;
  return {
    ...rest,
    nodes,
    commands,
    openstack: {
      osCloud: inv.openstack.osCloud ?? profile.osCloud,
      ...(inv.openstack.region ? { region: inv.openstack.region } : {}),
    },
    cells: inv.cells ?? profile.cells,
    ...(profile.name === 'devstack' ? { devstack: { venv: inv.devstack?.venv ?? DEVSTACK_VENV } } : {}),
    vip: {
      url: inv.vip.url,
      computeEndpointUrl: inv.vip.computeEndpointUrl ?? `${inv.vip.url}/v2.1`,
      computeEndpointInterfaces: inv.vip.computeEndpointInterfaces,
    },
    tempest: { host: tempestHost, enabled: inv.tempest.enabled, repeatDuringApi: inv.tempest.repeatDuringApi },
    controller: controllers[0]!.name,
    ...(loadBalancer ? { loadBalancer } : {}),
  };
}

export function parseInventoryText(text: string, source: string): Inventory {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    throw new InventoryError(
      source,
      doc.errors.map((e) => `YAML syntax (line ${e.linePos?.[0]?.line ?? '?'}): ${e.message.split('\n')[0]}`),
    );
  }
  return validateInventory(doc.toJS() as unknown, source);
}

export function loadInventory(path: string): Inventory {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InventoryError(path, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  return parseInventoryText(text, path);
}

export type { InventoryInput };
