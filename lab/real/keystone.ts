// What devstack's lib/keystone, lib/nova and lib/placement register in keystone after
// `keystone-manage bootstrap`: the service project, the nova and placement users with the
// admin and service roles, and the compute and placement services with public endpoints.
// Over keystone's REST API: one `openstack` call costs 2–4 s of Python start-up each.
import { ADMIN_PASSWORD, REGION, SERVICE_PASSWORD } from './configs';

interface Named {
  id: string;
  name: string;
}

export class KeystoneAdmin {
  private token = '';
  constructor(private readonly url: string) {}

  async login(): Promise<void> {
    const r = await fetch(`${this.url}/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: 'admin', domain: { id: 'default' }, password: ADMIN_PASSWORD } },
          },
          scope: { project: { name: 'admin', domain: { id: 'default' } } },
        },
      }),
    });
    if (r.status !== 201)
      throw new Error(`keystone at ${this.url} refused the admin login: HTTP ${r.status} ${await r.text()}`);
    this.token = r.headers.get('x-subject-token') ?? '';
  }

  /** The admin token of the last login, for another service's API (nova's flavors). */
  get authToken(): string {
    return this.token;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await fetch(`${this.url}/v3${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-auth-token': this.token },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (r.status >= 300) throw new Error(`keystone ${method} ${path}: HTTP ${r.status} ${await r.text()}`);
    return (r.status === 204 ? {} : await r.json()) as T;
  }

  private async find(collection: string, name: string, extra = ''): Promise<Named | undefined> {
    const r = await this.call<Record<string, Named[]>>(
      'GET',
      `/${collection}?name=${encodeURIComponent(name)}${extra}`,
    );
    return r[collection]?.[0];
  }

  async ensure(collection: string, singular: string, name: string, body: Record<string, unknown>): Promise<Named> {
    const found = await this.find(collection, name);
    if (found) return found;
    const r = await this.call<Record<string, Named>>('POST', `/${collection}`, { [singular]: { name, ...body } });
    return r[singular]!;
  }

  async ensureEndpoint(serviceId: string, iface: string, url: string): Promise<void> {
    const r = await this.call<{ endpoints: Array<{ id: string; url: string }> }>(
      'GET',
      `/endpoints?service_id=${serviceId}&interface=${iface}`,
    );
    if (r.endpoints.length) return;
    await this.call('POST', '/endpoints', {
      endpoint: { service_id: serviceId, interface: iface, url, region_id: REGION, enabled: true },
    });
  }
}

export interface CatalogInput {
  keystoneUrl: string;
  /** The compute endpoint devstack registers: the controller's own nova-api. */
  computeUrl: string;
  placementUrl: string;
}

export async function registerServices(i: CatalogInput): Promise<void> {
  const k = new KeystoneAdmin(i.keystoneUrl);
  await k.login();
  const project = await k.ensure('projects', 'project', 'service', {
    domain_id: 'default',
    description: 'devstack service project',
  });
  const roles = await Promise.all(['admin', 'service'].map((r) => k.ensure('roles', 'role', r, {})));
  for (const name of ['nova', 'placement']) {
    const user = await k.ensure('users', 'user', name, {
      domain_id: 'default',
      password: SERVICE_PASSWORD,
      default_project_id: project.id,
    });
    for (const role of roles) await k.call('PUT', `/projects/${project.id}/users/${user.id}/roles/${role.id}`);
  }
  const compute = await k.ensure('services', 'service', 'nova', {
    type: 'compute',
    description: 'Nova Compute Service',
  });
  await k.ensureEndpoint(compute.id, 'public', i.computeUrl);
  const placement = await k.ensure('services', 'service', 'placement', {
    type: 'placement',
    description: 'Placement Service',
  });
  await k.ensureEndpoint(placement.id, 'public', i.placementUrl);
}
