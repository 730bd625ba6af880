// OpenStack-Ansible: openstack_user_config.yml (host groups by level, each host with its ip,
// global_overrides with the VIPs), and where needed its generated openstack_inventory.json,
// which says whether nova runs in LXC containers or on the hosts themselves.
import { parseDocument } from 'yaml';
import { ImportError, type Vars } from './ansibleInventory';
import { Draft, isTemplate, NODE_NAME, vipUrl } from './draft';
import { setRelease } from './kolla';
import type { ImportOptions } from './options';

const NOVA_API_PORT = 8774;

type Level = Record<string, { ip?: unknown } | null>;

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function readUserConfig(text: string, source: string): Vars {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new ImportError(`${source}: not YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) {
    throw new ImportError(
      `${source}: holds no host groups: every line of it is a comment (OpenStack-Ansible's example documents each level in comments; copy the levels your cloud has and uncomment them)`,
    );
  }
  if (!isMap(data)) throw new ImportError(`${source}: openstack_user_config.yml is a mapping of levels`);
  // OpenStack-Ansible accepts os-infra_hosts and os_infra_hosts alike.
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k.replace(/-/g, '_'), v]));
}

export interface GeneratedInventory {
  source: string;
  hostvars: Record<string, Vars>;
  groups: Record<string, string[]>;
}

export function readGeneratedInventory(text: string, source: string): GeneratedInventory {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ImportError(`${source}: not JSON: ${(err as Error).message}`);
  }
  if (!isMap(data) || !isMap(data._meta) || !isMap(data._meta.hostvars))
    throw new ImportError(`${source}: not an Ansible inventory with _meta.hostvars (openstack_inventory.json)`);
  const groups: Record<string, string[]> = {};
  for (const [name, g] of Object.entries(data))
    if (isMap(g) && Array.isArray(g.hosts)) groups[name] = g.hosts.filter((h): h is string => typeof h === 'string');
  return { source, hostvars: data._meta.hostvars as Record<string, Vars>, groups };
}

function hostsAt(config: Vars, levels: string[], source: string): Array<{ name: string; ip: string }> {
  const out = new Map<string, string>();
  for (const level of levels) {
    const l = config[level];
    if (l === undefined || l === null) continue;
    if (!isMap(l)) throw new ImportError(`${source}: ${level} must map host names to {ip: …}`);
    for (const [name, body] of Object.entries(l as Level)) {
      const ip = isMap(body) ? body.ip : undefined;
      if (typeof ip !== 'string' || !ip) throw new ImportError(`${source}: ${level}.${name} has no ip`);
      if (!out.has(name)) out.set(name, ip);
    }
  }
  return [...out].map(([name, ip]) => ({ name, ip }));
}

const API_LEVELS = ['compute_infra_hosts', 'os_infra_hosts'];
const LB_LEVELS = ['load_balancer_hosts', 'haproxy_hosts'];

export function importOsa(
  config: { vars: Vars; source: string },
  generated: GeneratedInventory | undefined,
  opts: ImportOptions,
): Draft {
  const c = config.vars;
  const src = config.source;
  const api = hostsAt(c, API_LEVELS, src);
  const computes = hostsAt(c, ['compute_hosts'], src);
  const lbs = hostsAt(c, LB_LEVELS, src);
  if (api.length === 0)
    throw new ImportError(
      `${src}: neither compute_infra_hosts nor os_infra_hosts lists a host, so no node runs nova-api`,
    );
  if (lbs.length === 0)
    throw new ImportError(
      `${src}: neither load_balancer_hosts nor haproxy_hosts lists a host; nova-upgrade drains nova-api in HAProxy, so an external load balancer cannot be mapped`,
    );

  // Where nova-api runs: OpenStack-Ansible's default is an LXC container on each infra host.
  const apiGroup = generated ? (generated.groups.nova_api_os_compute ?? generated.groups.nova_api ?? []) : [];
  const containers = generated
    ? apiGroup.filter(
        (h) => (generated.hostvars[h]?.physical_host ?? h) !== h && generated.hostvars[h]?.is_metal !== true,
      )
    : [];
  if (generated && containers.length) {
    throw new ImportError(
      `${generated.source}: nova-api runs in LXC containers (${containers.join(', ')}); nova-upgrade reaches hosts over SSH and cannot yet run nova's commands inside an LXC container`,
    );
  }
  if (!generated && !opts.novaOnMetal) {
    throw new ImportError(
      `${src}: OpenStack-Ansible runs nova-api, nova-conductor and nova-scheduler in LXC containers on ${api.map((h) => h.name).join(', ')} by default, ` +
        'and nova-upgrade cannot yet run commands inside LXC containers: if nova runs on the hosts themselves (is_metal), pass --nova-on-metal, or give openstack_inventory.json to show it',
    );
  }

  const overrides = isMap(c.global_overrides) ? c.global_overrides : {};
  const vip = opts.vip ?? overrides.internal_lb_vip_address;
  if (vip === undefined)
    throw new ImportError(`${src}: global_overrides.internal_lb_vip_address is not set: set it, or pass --vip`);
  if (typeof vip !== 'string' || isTemplate(vip))
    throw new ImportError(
      `${src}: global_overrides.internal_lb_vip_address is "${String(vip)}", not an address: pass --vip`,
    );

  const draft = new Draft([
    `Imported by nova-upgrade from OpenStack-Ansible: ${[src, ...(generated ? [generated.source] : [])].join(', ')}.`,
    'Every value marked ASSUMED is not in those files: check it before an upgrade.',
    `nova runs on the hosts themselves (${generated ? 'as openstack_inventory.json shows' : '--nova-on-metal'}), under the systemd units OpenStack-Ansible names.`,
  ]);
  draft.set(
    ['cloud'],
    opts.cloud ?? 'osa',
    opts.cloud ? undefined : 'a name for this cloud; it makes the workflow id nova-upgrade-<cloud>',
  );
  setRelease(draft, opts);
  draft.set(
    ['vip', 'url'],
    vipUrl(vip, NOVA_API_PORT, false),
    `nova-api's port ${NOVA_API_PORT} behind the internal VIP, over http`,
  );
  draft.set(
    ['haproxy', 'backend'],
    'nova_api_os_compute-back',
    "OpenStack-Ansible's haproxy_server role names the backend <service>-back",
  );
  draft.set(
    ['openstack', 'osCloud'],
    'default',
    'the clouds.yaml entry OpenStack-Ansible writes for root; the controller needs it',
  );
  draft.set(
    ['cells'],
    [
      { name: 'cell0', configFile: '/etc/nova/nova.conf' },
      { name: 'cell1', configFile: '/etc/nova/nova.conf' },
    ],
    'OpenStack-Ansible keeps one nova.conf for every cell',
  );

  // One machine may be listed under several names with one ip (OpenStack-Ansible's own example
  // puts lb2 on infra1's address): it is one node, under the first name it is given.
  const byIp = new Map<string, string[]>();
  for (const h of [api[0]!, ...api, ...computes, ...lbs]) {
    const names = byIp.get(h.ip) ?? [];
    if (!names.includes(h.name)) names.push(h.name);
    byIp.set(h.ip, names);
  }
  [...byIp.entries()].forEach(([ip, aliases], i) => {
    const name = aliases[0]!;
    if (!NODE_NAME.test(name))
      throw new ImportError(
        `${src}: host "${name}" is not a name nova-upgrade can use for a node (letters, digits, ".", "_", "-")`,
      );
    const at = (...rest: Array<string | number>) => ['nodes', i, ...rest];
    const has = (list: Array<{ name: string }>) => list.some((h) => aliases.includes(h.name));
    const isApi = has(api);
    const isCompute = has(computes);
    const isLb = has(lbs);
    draft.set(
      at('name'),
      name,
      aliases.length > 1 ? `also listed as ${aliases.slice(1).join(', ')}, with the same ip: one machine` : undefined,
    );
    draft.set(at('address'), ip);
    const roles = [
      ...(i === 0 ? ['controller'] : []),
      ...(isApi ? ['api'] : []),
      ...(isCompute ? ['compute'] : []),
      ...(isLb ? ['lb'] : []),
    ];
    draft.set(
      at('roles'),
      roles,
      i === 0 ? 'nova-manage, nova-status and the openstack CLI run on the first nova API host' : undefined,
    );
    if (isApi) {
      draft.set(at('api', 'haproxyServer'), name, 'OpenStack-Ansible names each HAProxy server by its inventory host');
      draft.set(
        at('api', 'url'),
        vipUrl(ip, NOVA_API_PORT, false),
        `nova-api on the host's management address, port ${NOVA_API_PORT}`,
      );
    }
    if (isLb)
      draft.set(
        at('lb', 'socket'),
        { via: 'ssh', path: '/var/run/haproxy.stat', sudo: true },
        "the admin socket OpenStack-Ansible's haproxy_server role configures",
      );
    const services = [
      ...(isApi
        ? [
            { unit: 'nova-conductor', kind: 'conductor' },
            { unit: 'nova-scheduler', kind: 'scheduler' },
            { unit: 'nova-api-metadata', kind: 'metadata' },
            { unit: 'nova-novncproxy', kind: 'console' },
            { unit: 'nova-api-os-compute', kind: 'api' },
          ]
        : []),
      ...(isCompute ? [{ unit: 'nova-compute', kind: 'compute' }] : []),
    ];
    if (services.length) {
      draft.set(at('services'), services, "OpenStack-Ansible's systemd units for nova on this host's levels");
      draft.set(at('configFiles'), ['/etc/nova/nova.conf']);
    }
  });
  return draft;
}
