// The one inventory schema: the CLI validates a YAML file against it at the edge, and the
// workflow receives the parsed, defaulted result. Only paths to secrets ever appear here.
import { z } from 'zod';
import { DEFAULT_COMMANDS, COMMAND_PLACEHOLDERS, type CommandName } from './commands';
import { checkReleasePair } from './jump';
import { CONTAINER_ENGINES, PROFILE_NAMES, type ProfileName } from './profiles/names';

// HAProxy accepts letters, digits, '-', '_', '.' and ':' in proxy and server names. Anything
// else (';' or a newline above all) could smuggle a second runtime command into a batch.
export const HAPROXY_NAME = /^[A-Za-z0-9_.:-]+$/;
const haproxyName = z
  .string()
  .regex(HAPROXY_NAME, "must be a valid HAProxy name (letters, digits, '-', '_', '.', ':')");

const nodeName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
    'must start with a letter or digit and hold only letters, digits, ".", "_" or "-"',
  );
const version = z.string().regex(/^\d+\.\d+\.\d+([.-][0-9A-Za-z.-]+)?$/, 'must be a release version such as 31.0.0');
const httpUrl = z
  .string()
  .url('must be a URL')
  .refine((u) => /^https?:\/\//.test(u), 'must be an http:// or https:// URL')
  .transform((u) => u.replace(/\/+$/, ''));
const port = z.number().int().min(1).max(65535);
const seconds = z.number().positive();

const percent = z
  .string()
  .regex(/^(100|[1-9][0-9]?)%$/, 'must be a whole number of nodes or a percent from 1% to 100% (e.g. "10%")');
const countOrPercent = (what: string) =>
  z.union([z.number().int().min(1, 'must be at least 1 node'), percent], { error: `must be ${what}` });

export const ROLES = ['controller', 'api', 'compute', 'lb'] as const;
export type Role = (typeof ROLES)[number];

export const SERVICE_KINDS = ['conductor', 'scheduler', 'api', 'metadata', 'console', 'compute', 'other'] as const;

const serviceSchema = z
  .object({
    unit: z.string().regex(/^[A-Za-z0-9@_.:-]+$/, 'must be a systemd unit name'),
    kind: z.enum(SERVICE_KINDS),
    // A service with an HAProxy server is drained, restarted and enabled like nova-api
    // instead of being restarted in place.
    haproxyServer: haproxyName.optional(),
    // The HAProxy backends that route to this service (kolla and OpenStack-Ansible put nova-api
    // and nova-metadata in backends of their own); default haproxy.backend. Each is drained
    // before the service restarts, waited on, and enabled after.
    haproxyBackends: z
      .array(haproxyName)
      .min(1)
      .refine((a) => new Set(a).size === a.length, 'must name each backend once')
      .optional(),
  })
  .strict();
export type Service = z.infer<typeof serviceSchema>;

const lbSocketSchema = z.discriminatedUnion('via', [
  z
    .object({
      via: z.literal('ssh'),
      path: z.string().min(1).default('/var/run/haproxy.sock'),
      sudo: z.boolean().default(true),
    })
    .strict(),
  z.object({ via: z.literal('unix'), path: z.string().min(1) }).strict(),
  z.object({ via: z.literal('tcp'), host: z.string().min(1), port }).strict(),
]);
export type LbSocket = z.infer<typeof lbSocketSchema>;

// Only `nova-upgrade lb setup` reads what follows: the upgrade itself talks to the socket alone.
// Paths end up inside haproxy.cfg and keepalived.conf, whose parsers split on whitespace.
const absPath = z.string().regex(/^\/[^\s'"]*$/, 'must be an absolute path without spaces or quotes');
const ifName = z
  .string()
  .regex(
    /^[A-Za-z0-9_.:@-]{1,15}$/,
    'must be a network interface name (up to 15 letters, digits, "_", ".", ":", "@", "-")',
  );
const IPV4_OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
export const IPV4 = new RegExp(`^${IPV4_OCTET}(\\.${IPV4_OCTET}){3}$`);
// RFC 1123 labels; RFC 3696 section 2: the last label is never all digits, which is what keeps a
// mistyped IPv4 address such as 192.168.0.999 from passing as a hostname.
const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}\\.?$)(?:${HOST_LABEL}\\.)*(?=[A-Za-z0-9-]*[A-Za-z-])${HOST_LABEL}\\.?$`);
const ipv6 = z.ipv6();

/** Why a node address is neither an IPv4 address, an IPv6 address nor a hostname; undefined if it is one. */
export function addressProblem(address: string): string | undefined {
  if (IPV4.test(address) || ipv6.safeParse(address).success || HOSTNAME.test(address)) return undefined;
  const shown = JSON.stringify(address);
  if (/^\[.*\]$/.test(address) && ipv6.safeParse(address.slice(1, -1)).success)
    return `${shown} has brackets; write the IPv6 address without them`;
  if (/^[\d.]+$/.test(address))
    return `${shown} is not an IPv4 address (four numbers from 0 to 255, without leading zeros) and, being all digits, cannot be a hostname`;
  return `${shown} is not an IPv4 address, an IPv6 address or a hostname (letters, digits and "-" in labels separated by dots)`;
}

const nodeAddress = z
  .string()
  .min(1, 'must not be empty')
  .superRefine((a, ctx) => {
    const problem = a ? addressProblem(a) : undefined;
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const lbPort = z
  .number()
  .int('must be a TCP port, 1 to 65535')
  .min(1, 'must be a TCP port, 1 to 65535')
  .max(65535, 'must be a TCP port, 1 to 65535');

export const LB_FILE_DEFAULTS = {
  haproxyConfig: '/etc/haproxy/haproxy.cfg',
  keepalivedConfig: '/etc/keepalived/keepalived.conf',
  // HAProxy reads it at every start; Debian keeps /var/lib/haproxy for HAProxy's own state.
  serverState: '/var/lib/haproxy/server-state',
  // Debian's unit passes -p /run/haproxy.pid; keepalived's track script reads it.
  haproxyPid: '/run/haproxy.pid',
  sysctl: '/etc/sysctl.d/60-nova-upgrade-lb.conf',
} as const;
export type LbFiles = { -readonly [K in keyof typeof LB_FILE_DEFAULTS]: string };

const lbFileOverrides = z
  .object(
    Object.fromEntries(Object.keys(LB_FILE_DEFAULTS).map((k) => [k, absPath.optional()])) as Record<
      keyof LbFiles,
      z.ZodOptional<typeof absPath>
    >,
  )
  .strict();

const lbNodeSchema = z
  .object({
    socket: lbSocketSchema,
    // keepalived priority; default 101 for the first LB node, one less for each next one.
    priority: z
      .number()
      .int()
      .min(1, 'must be a VRRP priority, 1 to 254')
      .max(254, 'must be a VRRP priority, 1 to 254')
      .optional(),
    interface: ifName.optional(),
    files: lbFileOverrides.optional(),
  })
  .strict();

const loadBalancerSchema = z
  .object({
    // Default: the host of vip.url, which must then be an IPv4 address.
    vipAddress: z.string().regex(IPV4, 'must be an IPv4 address').optional(),
    vipPrefixLength: z.number().int().min(1).max(32).default(32),
    interface: ifName.default('eth0'),
    virtualRouterId: z
      .number()
      .int()
      .min(1, 'must be a VRRP router id, 1 to 255')
      .max(255, 'must be a VRRP router id, 1 to 255')
      .default(50),
    advertIntervalSeconds: z.number().int().min(1).max(255).default(1),
    frontendName: haproxyName.default('nova-api-vip'),
    // Default: the port of vip.url.
    frontendPort: lbPort.optional(),
    log: z
      .string()
      .regex(/^[^\n#]+$/, 'must be one line of HAProxy log target')
      .default('/dev/log local0'),
    healthCheck: z
      .object({ path: z.string().regex(/^\/\S*$/, 'must be a URL path without spaces'), intervalSeconds: seconds })
      .strict()
      .default({ path: '/', intervalSeconds: 2 }),
    // Whether file writes, sysctl and `haproxy -c` on the LB nodes go through `sudo -n`.
    sudo: z.boolean().default(true),
    files: z
      .object(
        Object.fromEntries(Object.entries(LB_FILE_DEFAULTS).map(([k, v]) => [k, absPath.default(v)])) as Record<
          keyof LbFiles,
          z.ZodDefault<typeof absPath>
        >,
      )
      .strict()
      .default({ ...LB_FILE_DEFAULTS }),
  })
  .strict();

/** One LB node's keepalived and file settings, defaults filled in. */
export interface LoadBalancerMember {
  node: string;
  priority: number;
  interface: string;
  files: LbFiles;
}

/** The loadBalancer section resolved: VIP and frontend port known, every LB node's priority set. */
export interface LoadBalancerSettings {
  vipAddress: string;
  vipPrefixLength: number;
  virtualRouterId: number;
  advertIntervalSeconds: number;
  frontendName: string;
  frontendPort: number;
  log: string;
  healthCheck: { path: string; intervalSeconds: number };
  sudo: boolean;
  /** In inventory order. */
  members: LoadBalancerMember[];
  /** The backend's servers, from each api node's url. */
  servers: Array<{ name: string; node: string; host: string; port: number }>;
}

const nodeSchema = z
  .object({
    name: nodeName,
    // Where the node is: the name given to ssh unless sshHost says otherwise, and the host of
    // the default api.url.
    address: nodeAddress.optional(),
    // An ssh config Host alias to connect through; the config then gives HostName, User,
    // Port, IdentityFile, ProxyJump and UserKnownHostsFile.
    sshHost: z
      .string()
      .regex(/^[^\s'"\\]+$/, 'must be one ssh host name or alias, without spaces or quotes')
      .optional(),
    sshPort: port.optional(),
    sshUser: z.string().min(1).optional(),
    // This node's key, instead of ssh.privateKeyPath.
    sshPrivateKeyPath: z.string().min(1).optional(),
    roles: z.array(z.enum(ROLES)).min(1, 'must name at least one role'),
    // nova's own name for the host (`openstack compute service list`), when it differs.
    novaHost: z.string().min(1).optional(),
    api: z
      .object({
        haproxyServer: haproxyName.optional(),
        url: httpUrl.optional(),
      })
      .strict()
      .optional(),
    lb: lbNodeSchema.optional(),
    services: z.array(serviceSchema).optional(),
    configFiles: z.array(z.string().min(1)).optional(),
    // Where nova places the node, for compute.groupBy: a batch never mixes cells.
    cell: z.string().min(1).optional(),
    az: z.string().min(1).optional(),
    aggregate: z.string().min(1).optional(),
  })
  .strict();

const commandsSchema = z
  .object(
    Object.fromEntries(Object.keys(DEFAULT_COMMANDS).map((k) => [k, z.string().min(1).optional()])) as Record<
      CommandName,
      z.ZodOptional<z.ZodString>
    >,
  )
  .strict();

export const inventorySchema = z
  .object({
    cloud: nodeName,
    // Only pairs nova supports: forward, N+1, or N+2 from one SLURP release to the next.
    release: z
      .object({ from: version, to: version })
      .strict()
      .superRefine((r, ctx) => {
        const problem = checkReleasePair(r.from, r.to);
        if (problem)
          ctx.addIssue({
            code: 'custom',
            path: [problem.field === 'release.from' ? 'from' : 'to'],
            message: problem.message,
          });
      }),
    // Every value here is like an ssh command-line option: it beats the ssh config. What both
    // leave unsaid falls back to root and port 22; keys to the agent and ssh's default files.
    ssh: z
      .object({
        // The OpenSSH client config the worker reads: a file, or "none"; default ~/.ssh/config
        // then /etc/ssh/ssh_config, as ssh(1) reads them.
        config: z
          .string()
          .regex(/^(none|\/.*|~\/.*)$/, 'must be an absolute path, a path starting with ~/, or none')
          .optional(),
        user: z.string().min(1).optional(),
        port: port.optional(),
        privateKeyPath: z.string().min(1).optional(),
        knownHostsPath: z.string().min(1).optional(),
        connectTimeoutSeconds: seconds.default(10),
      })
      .strict()
      .default({ connectTimeoutSeconds: 10 }),
    // Where detached runs keep their pid, output and exit code on each node.
    remoteStateDir: z.string().min(1).default('$HOME/.nova-upgrade'),
    vip: z
      .object({
        url: httpUrl,
        // What keystone's compute endpoint should say; nova's versioned root behind the VIP.
        computeEndpointUrl: httpUrl.optional(),
        // Which of the compute service's endpoints (in openstack.region) get that URL.
        computeEndpointInterfaces: z
          .array(z.enum(['public', 'internal', 'admin']))
          .min(1)
          .refine((a) => new Set(a).size === a.length, 'must name each interface once')
          .default(['public']),
      })
      .strict(),
    haproxy: z
      .object({
        backend: haproxyName.default('nova-api'),
        drainMode: z.enum(['weight', 'disable', 'drain']).default('drain'),
        // The seed promises a max API version that rises monotonically; the rolling order (the
        // seed's literal "one at a time") showed up to 82 decreases per run to clients that
        // alternate between an old and an upgraded node (37 in the README's demo, 71 under a
        // keep-alive probe). So monotonic is the default, and rolling stays on request.
        switchover: z.enum(['rolling', 'monotonic']).default('monotonic'),
      })
      .strict()
      .default({ backend: 'nova-api', drainMode: 'drain', switchover: 'monotonic' }),
    openstack: z
      .object({
        // Name of the clouds.yaml entry the openstack CLI uses on the controller: a reference,
        // never a password. Default: the profile's (devstack-admin, kolla-admin, admin).
        osCloud: z.string().min(1).optional(),
        // The keystone region whose compute endpoint the upgrade points at the VIP; required
        // once the catalog has compute endpoints in more than one region (checked when read).
        region: z
          .string()
          .regex(/^[^\s'"]+$/, 'must be a keystone region id, without spaces or quotes')
          .optional(),
      })
      .strict()
      .default({}),
    // The nova config with [api_database] (devstack's nova.conf): read before each cell's own
    // config where a command needs both databases (online data migrations).
    apiConfigFile: z.string().min(1).default('/etc/nova/nova.conf'),
    // Default: the profile's cells (devstack's cell0 and cell1 configs, kolla's nova-api and
    // nova-conductor configs, a package install's one nova.conf).
    cells: z
      .array(z.object({ name: z.string().min(1), configFile: z.string().min(1) }).strict())
      .min(1)
      .optional(),
    compute: z
      .object({
        batchSize: countOrPercent(
          'a whole number of nodes (e.g. 10) or a percent of the computes (e.g. "10%")',
        ).default(5),
        // The fields below are optional, not defaulted here: upgrades started with an inventory
        // from before them replay with the batches they had.
        // Nodes of one batch whose install, restart and wait-up run at once.
        parallel: z.number().int().min(1).max(500).optional(),
        // A first batch of this many nodes (OpenStack-Ansible's serial: [1, …]), before the others.
        canary: z.number().int().min(1).optional(),
        // A batch never mixes two values of this node field (nodes[].cell, .az or .aggregate).
        groupBy: z.enum(['cell', 'az', 'aggregate']).optional(),
        // Seconds between the end of a batch and the start of the next (Azure's pauseTimeBetweenBatches).
        pauseSeconds: z.number().int().min(1).max(86_400).optional(),
        // Once more nodes than this have failed (held or skipped), no new batch starts.
        maxFailedNodes: z
          .union([z.number().int().min(0), percent], {
            error: 'must be a whole number of nodes (e.g. 3) or a percent of the computes (e.g. "2%")',
          })
          .optional(),
        exclude: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({ batchSize: 5, exclude: [] }),
    tempest: z
      .object({
        host: nodeName.optional(),
        enabled: z.boolean().default(true),
        /**
         * Run tempest again and again beside the nova-api restarts until the last API server is
         * up again, so that the run overlaps every restart instead of ending before the first.
         */
        repeatDuringApi: z.boolean().default(false),
      })
      .strict()
      .default({ enabled: true, repeatDuringApi: false }),
    probe: z
      .object({
        enabled: z.boolean().default(true),
        ratePerSecond: z.number().positive().default(20),
        clients: z.number().int().min(1).default(4),
        paths: z.array(z.string().startsWith('/')).min(1).default(['/', '/v2.1/']),
        requestTimeoutSeconds: seconds.default(10),
        // Failed requests tolerated before the run holds for the operator.
        maxFailures: z.number().int().min(0).default(0),
        // Authenticated traffic beside the anonymous paths: a token from this cloud of a
        // clouds.yaml on the worker's host, then these GETs and a keypair create and delete.
        auth: z
          .object({
            cloudsYaml: z.string().min(1),
            cloud: z.string().min(1),
            paths: z.array(z.string().startsWith('/')).default(['/v2.1/servers/detail', '/v2.1/flavors']),
            keypairs: z.boolean().default(true),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({
        enabled: true,
        ratePerSecond: 20,
        clients: 4,
        paths: ['/', '/v2.1/'],
        requestTimeoutSeconds: 10,
        maxFailures: 0,
      }),
    timeouts: z
      .object({
        commandSeconds: seconds.default(900),
        drainSeconds: seconds.default(300),
        settleSeconds: seconds.default(3),
        serviceUpSeconds: seconds.default(180),
        tempestSeconds: seconds.default(3600),
        pollSeconds: seconds.default(1),
        // A worker that dies mid-step is noticed after this long, then the step is retried.
        heartbeatSeconds: seconds.default(30),
        // Limit for a single short read or change (a config file, a service list).
        readSeconds: seconds.default(120),
      })
      .strict()
      .default({
        commandSeconds: 900,
        drainSeconds: 300,
        settleSeconds: 3,
        serviceUpSeconds: 180,
        tempestSeconds: 3600,
        pollSeconds: 1,
        heartbeatSeconds: 30,
        readSeconds: 120,
      }),
    retry: z
      .object({
        maximumAttempts: z.number().int().min(1).default(5),
        initialIntervalSeconds: seconds.default(2),
        maximumIntervalSeconds: seconds.default(60),
      })
      .strict()
      .default({ maximumAttempts: 5, initialIntervalSeconds: 2, maximumIntervalSeconds: 60 }),
    // The webhook URL carries its token: the inventory names where the worker reads it, so it
    // never enters workflow input or history. `webhookUrl` (0.1.0) is refused with that sentence.
    notify: z
      .object({
        webhookUrl: z
          .string()
          .optional()
          .refine((v) => v === undefined, {
            message:
              'name the file (notify.webhookUrlFile) or environment variable (notify.webhookUrlEnv) on the worker that holds the URL; a URL here would enter the workflow history with its token',
          }),
        webhookUrlFile: z.string().min(1).optional(),
        webhookUrlEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
          .optional(),
      })
      .strict()
      .refine((n) => !(n.webhookUrlFile && n.webhookUrlEnv), {
        message: 'name either webhookUrlFile or webhookUrlEnv, not both',
      })
      .default({}),
    window: z
      .object({ end: z.iso.datetime({ offset: true }).optional() })
      .strict()
      .default({}),
    // Every per-deployment difference (services, config paths, how code is installed, how a
    // service is restarted and its identity read): inventory/profiles/. `commands` and a node's
    // `services` and `configFiles` still override any of it.
    profile: z.enum(PROFILE_NAMES, { message: `must be one of ${PROFILE_NAMES.join(', ')}` }).default('devstack'),
    // Read only with profile: devstack.
    devstack: z
      .object({
        // devstack's DEVSTACK_VENV (stackrc), where GLOBAL_VENV installs every project.
        venv: absPath.optional(),
      })
      .strict()
      .optional(),
    // Read only with profile: kolla (kolla-ansible's globals.yml names in brackets).
    kolla: z
      .object({
        engine: z
          .enum(CONTAINER_ENGINES, { message: `must be one of ${CONTAINER_ENGINES.join(', ')}` })
          .default('docker'),
        // [docker_registry]/[docker_namespace] of the new images, e.g. registry.example.com/kolla.
        images: z
          .string()
          .regex(
            /^[a-z0-9][a-z0-9._:-]*(\/[a-z0-9][a-z0-9._-]*)*$/,
            'must be a registry and namespace such as registry.example.com/kolla, without a trailing /',
          ),
        // [openstack_tag] of the release upgraded to, e.g. 2025.1-ubuntu-noble.
        tag: z
          .string()
          .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be an image tag (letters, digits, "_", "." and "-")'),
        // [node_config_directory].
        configDir: absPath.default('/etc/kolla'),
      })
      .strict()
      .optional(),
    commands: commandsSchema.default({}),
    loadBalancer: loadBalancerSchema.optional(),
    nodes: z.array(nodeSchema).min(1, 'must list at least one node'),
  })
  .strict();

export type InventoryInput = z.input<typeof inventorySchema>;
type Parsed = z.output<typeof inventorySchema>;

/** A node with every default filled in: what activities and workflows work with. */
export interface Node {
  name: string;
  /** The node's address, or its sshHost alias when the inventory gives no address. */
  address: string;
  sshPort: number;
  sshUser: string;
  /** The name given to ssh when it is not the address: an ssh config Host alias. */
  sshHost?: string;
  sshPrivateKeyPath?: string;
  /** Set when sshPort / sshUser are only the built-in defaults, which an ssh config may override. */
  sshPortIsDefault?: boolean;
  sshUserIsDefault?: boolean;
  roles: Role[];
  novaHost: string;
  api?: { haproxyServer: string; url: string };
  lb?: { socket: LbSocket };
  services: Service[];
  configFiles: string[];
  cell?: string;
  az?: string;
  aggregate?: string;
}

export type Inventory = Omit<Parsed, 'nodes' | 'commands' | 'loadBalancer' | 'openstack' | 'cells' | 'devstack'> & {
  nodes: Node[];
  commands: Record<CommandName, string>;
  openstack: { osCloud: string; region?: string };
  cells: { name: string; configFile: string }[];
  /** devstack's venv, the value of {venv}; absent with another profile and in runs started before profiles. */
  devstack?: { venv: string };
  vip: { url: string; computeEndpointUrl: string; computeEndpointInterfaces: Array<'public' | 'internal' | 'admin'> };
  /** repeatDuringApi is absent in runs started before it existed. */
  tempest: { host: string; enabled: boolean; repeatDuringApi: boolean };
  /** The node that runs nova-manage, nova-status and the openstack CLI. */
  controller: string;
  /** Present only when the inventory has a loadBalancer section (what `lb setup` needs). */
  loadBalancer?: LoadBalancerSettings;
};

export { COMMAND_PLACEHOLDERS };
export type { ProfileName };
export type { CommandName };
