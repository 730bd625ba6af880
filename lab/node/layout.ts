// Where everything of one lab lives. Shared by the harness (lab.ts) and the scripts that run
// on the lab's nodes, so both sides agree on every path without passing them around.
import { join } from 'node:path';

/** What a node script learns about its node; written by labUp, read at every invocation. */
export interface NodeConfig {
  name: string;
  address: string;
  apiPort: number;
  /** systemd units this node has, e.g. devstack@n-api. */
  units: string[];
  /** Seconds nova-api finishes in-flight requests after SIGTERM (uwsgi's worker mercy). */
  apiMercySeconds: number;
  /** nova's service_down_time: how stale a heartbeat may be before a service reads as down. */
  serviceDownSeconds: number;
  /** A virtual compute of the scale lab (lab/fleet.ts): shell stand-ins, a derived heartbeat. */
  virtual?: boolean;
  /** Set on a real-nova lab node: its units run real programs instead of lab/node/service.ts. */
  real?: RealNodeConfig;
}

/** One systemd unit of a real-nova lab node, as devstack's unit file would describe it. */
export interface RealUnit {
  argv: string[];
  env: Record<string, string>;
  /**
   * devstack's uwsgi units are Type=notify: systemctl start returns once the server is ready.
   * The lab has no notify socket, so readiness is this URL answering HTTP at all.
   */
  readyUrl?: string;
  stopSignal: 'SIGTERM' | 'SIGINT' | 'SIGQUIT';
  /** systemd's TimeoutStopSec, after which the unit's process group gets SIGKILL. */
  stopTimeoutSeconds: number;
  /** The code symlink this unit runs from; its target at start names the release it runs. */
  codeLink: string;
}

export interface RealRelease {
  /** The nova venv for this release. */
  nova: string;
  /** The placement venv paired with it. */
  placement: string;
}

export interface RealNodeConfig {
  units: Record<string, RealUnit>;
  /** nova release → the venvs `lab-install-code RELEASE` points the node's code links at. */
  releases: Record<string, RealRelease>;
  /** <root>/code → the nova venv in use; <root>/placement → the placement venv (controller). */
  codeLink: string;
  placementLink?: string;
}

export const stateLayout = (stateDir: string) => ({
  root: stateDir,
  labJson: join(stateDir, 'lab.json'),
  inventory: join(stateDir, 'inventory.yaml'),
  privateKey: join(stateDir, 'keys', 'id_ed25519'),
  knownHosts: join(stateDir, 'known_hosts'),
  bin: join(stateDir, 'bin'),
  /** The real-nova lab's stand-ins: only systemctl, journalctl, sudo and lab-install-code. */
  realBin: join(stateDir, 'realbin'),
  /** MariaDB and RabbitMQ of a real-nova lab. */
  backing: (name: string) => join(stateDir, 'backing', name),
  lib: join(stateDir, 'lib'),
  fixtures: join(stateDir, 'fixtures', 'nova-versions'),
  tempest: join(stateDir, 'tempest'),
  cloud: join(stateDir, 'cloud'),
  faults: join(stateDir, 'cloud', 'faults'),
  haproxy: (lb: string) => join(stateDir, 'haproxy', lb),
  nodes: join(stateDir, 'nodes'),
  node: (name: string) => join(stateDir, 'nodes', name),
});

export const nodeLayout = (root: string) => ({
  root,
  config: join(root, 'node.json'),
  etcNova: join(root, 'etc', 'nova'),
  novaConf: join(root, 'etc', 'nova', 'nova.conf'),
  cell1Conf: join(root, 'etc', 'nova', 'nova_cell1.conf'),
  cpuConf: join(root, 'etc', 'nova', 'nova-cpu.conf'),
  clouds: join(root, '.config', 'openstack', 'clouds.yaml'),
  /** The release of the code installed on the node (what `pip install -e` would have put there). */
  codeVersion: join(root, 'code-version'),
  /** The placement release installed (controller): its own code, installed by its own command. */
  placementVersion: join(root, 'placement-version'),
  run: join(root, 'run'),
  unitState: (unit: string) => join(root, 'run', `${unit}.json`),
  heartbeat: (unit: string) => join(root, 'run', `${unit}.heartbeat`),
  hups: (unit: string) => join(root, 'run', `${unit}.hups`),
  unitLog: (unit: string) => join(root, 'run', `${unit}.log`),
  events: join(root, 'events.log'),
  sshd: join(root, 'sshd'),
  /** Real-nova lab: the venv links the node's programs run from, and its own bin directory. */
  codeLink: join(root, 'code'),
  placementLink: join(root, 'placement'),
  bin: join(root, 'bin'),
  etcPlacement: join(root, 'etc', 'placement'),
  etcKeystone: join(root, 'etc', 'keystone'),
});

/** Fault files tests drop into <stateDir>/cloud/faults to make a stand-in misbehave. */
export const FAULTS = {
  /** JSON: { "<check name>": { "code": 1|2, "details": "…" } } or { "error": "…" } for exit 255. */
  upgradeCheck: 'upgrade-check.json',
  /** The name of an online data migration that raises, e.g. populate_dev_uuids. */
  onlineDataMigrations: 'online-data-migrations',
  /** The name of a tempest test that fails; empty means test_list_servers. */
  tempest: 'tempest',
  /** `<unit> [<version>] [<node>]`: that unit exits at start (on that release, on that node). */
  serviceStart: 'service-start',
} as const;

export const NOVA_UNITS = {
  superConductor: 'devstack@n-super-cond',
  cellConductor: 'devstack@n-cond-cell1',
  scheduler: 'devstack@n-sch',
  metadata: 'devstack@n-api-meta',
  console: 'devstack@n-novnc-cell1',
  api: 'devstack@n-api',
  compute: 'devstack@n-cpu',
  placement: 'devstack@placement-api',
  keystone: 'devstack@keystone',
} as const;

/** A cell's own conductor, as devstack names it: devstack@n-cond-cell1, devstack@n-cond-cell2. */
export const cellConductorUnit = (cell: string) => `devstack@n-cond-${cell}`;
