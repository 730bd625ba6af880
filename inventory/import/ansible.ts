// A plain Ansible inventory (INI or YAML): roles come from groups, by the names nova's own
// deployment tools use unless the operator names the groups (--group api=webheads).
import type { Role } from '../schema';
import { hostsOf, ImportError, varsOf, type AnsibleInventory } from './ansibleInventory';
import { Draft, NODE_NAME, sshFieldsOf, vipUrl } from './draft';
import { setRelease } from './kolla';
import type { ImportOptions } from './options';

const CANDIDATES: Record<Role, string[]> = {
  controller: ['nova-conductor', 'nova_conductor', 'controller', 'controllers', 'control'],
  api: ['nova-api', 'nova_api', 'api', 'apis'],
  compute: ['nova-compute', 'nova_compute', 'compute', 'computes'],
  lb: ['haproxy', 'loadbalancer', 'load_balancer', 'lb', 'lbs'],
};

function groupFor(inv: AnsibleInventory, role: Role, opts: ImportOptions): string | undefined {
  const named = opts.groups?.[role];
  if (named !== undefined) {
    if (!inv.groups.has(named))
      throw new ImportError(`${inv.source}: --group ${role}=${named}: no group "${named}" in the inventory`);
    return named;
  }
  return CANDIDATES[role].find((g) => hostsOf(inv, g).length > 0);
}

export function importAnsible(inv: AnsibleInventory, opts: ImportOptions): Draft {
  const groups = Object.fromEntries(
    (['controller', 'api', 'compute', 'lb'] as const).map((r) => [r, groupFor(inv, r, opts)]),
  ) as Record<Role, string | undefined>;
  for (const role of ['controller', 'api', 'lb'] as const) {
    if (!groups[role])
      throw new ImportError(
        `${inv.source}: no group gives the ${role} role (looked for ${CANDIDATES[role].join(', ')}): name one with --group ${role}=<group>`,
      );
  }
  const local = (h: string) => varsOf(inv, h).ansible_connection === 'local';
  const members = (role: Role) => (groups[role] ? hostsOf(inv, groups[role]!).filter((h) => !local(h)) : []);
  const controllers = members('controller');
  const api = members('api');
  const computes = members('compute');
  const lbs = members('lb');
  if (!opts.vip)
    throw new ImportError(
      `${inv.source}: a plain Ansible inventory does not say where the VIP is: pass --vip (the address or URL clients reach nova-api at)`,
    );

  const draft = new Draft([
    `Imported by nova-upgrade from the Ansible inventory ${inv.source}.`,
    `Roles from groups: controller ${groups.controller}, api ${groups.api}, compute ${groups.compute ?? '(none)'}, lb ${groups.lb}.`,
    'Every value marked ASSUMED is not in that file: check it before an upgrade. Services and',
    "commands are devstack's defaults unless you set services per node and a deployment profile.",
  ]);
  draft.set(
    ['cloud'],
    opts.cloud ?? 'ansible',
    opts.cloud ? undefined : 'a name for this cloud; it makes the workflow id nova-upgrade-<cloud>',
  );
  setRelease(draft, opts);
  draft.set(
    ['vip', 'url'],
    vipUrl(opts.vip, 8774, false),
    /^https?:/.test(opts.vip) ? undefined : "nova-api's port 8774 behind the VIP, over http",
  );

  const names = [...new Set([controllers[0]!, ...api, ...computes, ...lbs])].filter(Boolean);
  names.forEach((host, i) => {
    if (!NODE_NAME.test(host))
      throw new ImportError(
        `${inv.source}: host "${host}" is not a name nova-upgrade can use for a node (letters, digits, ".", "_", "-")`,
      );
    const vars = varsOf(inv, host);
    const at = (...rest: Array<string | number>) => ['nodes', i, ...rest];
    draft.set(at('name'), host);
    if (typeof vars.ansible_host === 'string' && vars.ansible_host) draft.set(at('address'), vars.ansible_host);
    else draft.set(at('address'), host, 'the inventory name, which must resolve from the worker');
    const ssh = sshFieldsOf(vars);
    if (ssh.sshUser) draft.set(at('sshUser'), ssh.sshUser);
    if (ssh.sshPort) draft.set(at('sshPort'), ssh.sshPort);
    if (ssh.sshPrivateKeyPath) draft.set(at('sshPrivateKeyPath'), ssh.sshPrivateKeyPath);
    const roles = [
      ...(host === controllers[0] ? ['controller'] : []),
      ...(api.includes(host) ? ['api'] : []),
      ...(computes.includes(host) ? ['compute'] : []),
      ...(lbs.includes(host) ? ['lb'] : []),
    ];
    if (roles.length === 0)
      throw new ImportError(
        `${inv.source}: host "${host}" is in ${groups.controller} but is not its first host, nor in ${groups.api}, ${groups.compute ?? 'a compute group'} or ${groups.lb}; an inventory has one controller`,
      );
    draft.set(
      at('roles'),
      roles,
      host === controllers[0]
        ? `the first host of ${groups.controller} runs nova-manage, nova-status and the openstack CLI`
        : undefined,
    );
    if (api.includes(host)) {
      const address = typeof vars.ansible_host === 'string' && vars.ansible_host ? vars.ansible_host : host;
      draft.set(at('api', 'url'), vipUrl(address, 8774, false), "nova-api's default port 8774 on the host's address");
    }
    if (lbs.includes(host))
      draft.set(
        at('lb', 'socket'),
        { via: 'ssh', path: '/var/run/haproxy.sock', sudo: true },
        "HAProxy's admin socket at nova-upgrade's default path",
      );
  });
  return draft;
}
