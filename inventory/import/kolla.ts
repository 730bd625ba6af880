// kolla-ansible: its multinode INI inventory and globals.yml. What kolla-ansible itself decides
// (container names, the HAProxy backend and socket, the clouds.yaml entry) is taken from how
// kolla-ansible deploys, and marked ASSUMED where a deployment may differ.
import { parseDocument } from 'yaml';
import { hostsOf, ImportError, varsOf, type AnsibleInventory, type Vars } from './ansibleInventory';
import { Draft, isTemplate, NODE_NAME, sshFieldsOf, vipUrl } from './draft';
import type { ImportOptions } from './options';

const NOVA_API_PORT = 8774;

// kolla-ansible's nova containers, the inventory group each runs on, and what nova-upgrade
// does with them (restart in place, or drain and restart for nova-api).
const CONTAINERS: Array<{
  group: string;
  unit: string;
  kind: 'conductor' | 'scheduler' | 'api' | 'metadata' | 'console' | 'compute';
}> = [
  { group: 'nova-super-conductor', unit: 'nova_super_conductor', kind: 'conductor' },
  { group: 'nova-conductor', unit: 'nova_conductor', kind: 'conductor' },
  { group: 'nova-scheduler', unit: 'nova_scheduler', kind: 'scheduler' },
  { group: 'nova-metadata', unit: 'nova_metadata', kind: 'metadata' },
  { group: 'nova-novncproxy', unit: 'nova_novncproxy', kind: 'console' },
  { group: 'nova-api', unit: 'nova_api', kind: 'api' },
  { group: 'compute', unit: 'nova_compute', kind: 'compute' },
];

export function readGlobals(text: string, source: string): Vars {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new ImportError(`${source}: not YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data))
    throw new ImportError(`${source}: globals.yml is a mapping of variables`);
  return data as Vars;
}

const truthy = (v: unknown) => v === true || (typeof v === 'string' && /^(yes|true|1)$/i.test(v));

export function importKolla(
  inv: AnsibleInventory,
  globals: { vars: Vars; source: string } | undefined,
  opts: ImportOptions,
): Draft {
  const g = globals?.vars ?? {};
  const sources = [inv.source, ...(globals ? [globals.source] : [])];
  const draft = new Draft([
    `Imported by nova-upgrade from kolla-ansible: ${sources.join(', ')}.`,
    'Every value marked ASSUMED is not in those files: check it before an upgrade.',
    'kolla-ansible runs nova in containers: the upgrade needs the kolla deployment profile, since',
    "devstack's default commands (systemctl) would be aimed at container names.",
  ]);

  const local = (h: string) => varsOf(inv, h).ansible_connection === 'local';
  const apiHosts = hostsOf(inv, 'nova-api').filter((h) => !local(h));
  const conductors = hostsOf(inv, 'nova-conductor').filter((h) => !local(h));
  const computes = hostsOf(inv, 'compute').filter((h) => !local(h));
  const lbHosts = [...new Set([...hostsOf(inv, 'loadbalancer'), ...hostsOf(inv, 'haproxy')])].filter((h) => !local(h));
  if (apiHosts.length === 0)
    throw new ImportError(
      `${inv.source}: the nova-api group has no host; kolla-ansible's inventory puts nova-api on the nova group's hosts (control)`,
    );
  if (conductors.length === 0)
    throw new ImportError(`${inv.source}: the nova-conductor group has no host, so no node can run nova-manage`);
  if (lbHosts.length === 0)
    throw new ImportError(
      `${inv.source}: neither the loadbalancer nor the haproxy group has a host; nova-upgrade drains nova-api in kolla's HAProxy`,
    );
  if (truthy(g.enable_haproxy) === false && g.enable_haproxy !== undefined)
    throw new ImportError(
      `${globals!.source}: enable_haproxy is ${String(g.enable_haproxy)}: without kolla's HAProxy there is nothing to drain nova-api in`,
    );

  // The VIP: globals.yml's kolla_internal_vip_address, unless --vip says otherwise.
  const vip = opts.vip ?? g.kolla_internal_vip_address;
  if (vip === undefined) {
    throw new ImportError(
      `${globals?.source ?? inv.source}: kolla_internal_vip_address is not set${globals ? " (kolla-ansible's example globals.yml leaves it commented out)" : ' and no globals.yml was given'}: set it in globals.yml, or pass --vip`,
    );
  }
  if (isTemplate(vip) || typeof vip !== 'string')
    throw new ImportError(
      `${globals?.source ?? inv.source}: kolla_internal_vip_address is "${String(vip)}", not an address: pass --vip`,
    );
  const https = truthy(g.kolla_enable_tls_internal);
  draft.set(
    ['cloud'],
    opts.cloud ?? 'kolla',
    opts.cloud ? undefined : 'a name for this cloud; it makes the workflow id nova-upgrade-<cloud>',
  );
  setRelease(draft, opts, g);
  draft.set(
    ['vip', 'url'],
    vipUrl(vip, NOVA_API_PORT, https),
    `nova-api's internal port ${NOVA_API_PORT} (nova_api_port) behind the internal VIP`,
  );
  const fqdn = g.kolla_internal_fqdn;
  if (typeof fqdn === 'string' && !isTemplate(fqdn))
    draft.set(['vip', 'computeEndpointUrl'], `${vipUrl(fqdn, NOVA_API_PORT, https)}/v2.1`);
  draft.set(['haproxy', 'backend'], 'nova_api_back', 'kolla-ansible names the backend <service>_back');
  draft.set(
    ['openstack', 'osCloud'],
    'kolla-admin',
    'the entry kolla-ansible post-deploy writes to clouds.yaml; the controller needs it',
  );

  const engine = g.kolla_container_engine === 'podman' ? 'podman' : 'docker';
  const socketPath =
    engine === 'podman'
      ? '/var/lib/containers/storage/volumes/haproxy_socket/_data/haproxy.sock'
      : '/var/lib/docker/volumes/haproxy_socket/_data/haproxy.sock';
  const adminSocket = truthy(g.haproxy_socket_level_admin) || truthy(g.enable_letsencrypt);

  const hosts = [...new Set([...conductors.slice(0, 1), ...apiHosts, ...computes, ...lbHosts, ...conductors])];
  hosts.forEach((host, i) => {
    if (!NODE_NAME.test(host))
      throw new ImportError(
        `${inv.source}: host "${host}" is not a name nova-upgrade can use for a node (letters, digits, ".", "_", "-")`,
      );
    const vars = varsOf(inv, host);
    const at = (k: string | number, ...rest: Array<string | number>) => ['nodes', i, k, ...rest];
    draft.set(at('name'), host);
    if (typeof vars.ansible_host === 'string' && vars.ansible_host) draft.set(at('address'), vars.ansible_host);
    else
      draft.set(
        at('address'),
        host,
        'the inventory name, which must resolve from the worker (kolla-ansible asks the same of the deployment host)',
      );
    const ssh = sshFieldsOf(vars);
    if (ssh.sshUser) draft.set(at('sshUser'), ssh.sshUser);
    if (ssh.sshPort) draft.set(at('sshPort'), ssh.sshPort);
    if (ssh.sshPrivateKeyPath) draft.set(at('sshPrivateKeyPath'), ssh.sshPrivateKeyPath);

    const roles: string[] = [];
    if (host === conductors[0]) roles.push('controller');
    if (apiHosts.includes(host)) roles.push('api');
    if (computes.includes(host)) roles.push('compute');
    if (lbHosts.includes(host)) roles.push('lb');
    if (roles.length === 0) {
      throw new ImportError(
        `${inv.source}: host "${host}" runs nova-conductor but neither nova-api, nova-compute nor HAProxy; an inventory has one controller and no role for a second conductor-only host`,
      );
    }
    draft.set(
      at('roles'),
      roles,
      host === conductors[0]
        ? 'nova-manage, nova-status and the openstack CLI run on the first nova-conductor host'
        : undefined,
    );

    if (apiHosts.includes(host)) {
      const address = typeof vars.ansible_host === 'string' && vars.ansible_host ? vars.ansible_host : host;
      draft.set(
        at('api', 'haproxyServer'),
        host,
        "kolla-ansible names each HAProxy server by the host's own hostname, taken to be its inventory name",
      );
      draft.set(
        at('api', 'url'),
        vipUrl(address, NOVA_API_PORT, truthy(g.nova_enable_tls_backend)),
        `nova-api listens on the host's api_interface address, port ${NOVA_API_PORT}`,
      );
    }
    if (lbHosts.includes(host)) {
      draft.set(
        at('lb', 'socket'),
        { via: 'ssh', path: socketPath, sudo: true },
        `HAProxy's socket in kolla's haproxy_socket ${engine} volume, at ${engine}'s default storage path`,
      );
      if (!adminSocket)
        draft.note(
          at('lb', 'socket'),
          'kolla serves this socket at level admin only with haproxy_socket_level_admin: true in globals.yml (then reconfigure the loadbalancer); at its default level the preflight refuses it',
        );
    }
    const services = CONTAINERS.filter((c) =>
      (c.group === 'compute' ? computes : hostsOf(inv, c.group)).includes(host),
    ).map((c) => ({ unit: c.unit, kind: c.kind }));
    if (services.length)
      draft.set(
        at('services'),
        services,
        "kolla-ansible's container names for the nova services of this host's groups",
      );
  });
  return draft;
}

export function setRelease(draft: Draft, opts: ImportOptions, g: Vars = {}): void {
  if (!opts.releaseFrom || !opts.releaseTo) {
    const hint =
      typeof g.openstack_release === 'string' && !isTemplate(g.openstack_release)
        ? ` (globals.yml says openstack_release ${g.openstack_release}, a series, not nova's version)`
        : '';
    throw new ImportError(
      `nova's release is in none of these files${hint}: pass --release-from and --release-to with nova's versions, e.g. 30.0.0 and 31.0.0`,
    );
  }
  draft.set(['release'], { from: opts.releaseFrom, to: opts.releaseTo });
}
