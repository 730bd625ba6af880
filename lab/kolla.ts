// The kolla lab: the stand-in lab's nodes (real sshd, HAProxy, the stand-in cloud), with every
// nova service in a podman container named as kolla-ansible names it, created from images in a
// registry on the lab's subnet, and configs under <stateDir>/kolla/<service>/ mounted at
// /var/lib/kolla/config_files/ as kolla-ansible mounts /etc/kolla/<service>/. The upgrade runs
// the kolla profile's own commands against it: pull, one-shot nova-manage containers, recreate.
//
// Podman as it runs on this kind of machine (rootful, no systemd, cgroup v1 with a cgroup2
// "unified" mount beside it, no CAP_SYS_RESOURCE), and what each setting below is for:
// - runtime runc: crun 1.8 refuses the hybrid layout ("cgroups in hybrid mode not supported,
//   drop all controllers from cgroupv2");
// - ulimits below the hard limits: podman's default nofile of 1048576 fails with "setrlimit
//   RLIMIT_NOFILE: Operation not permitted", as raising a hard limit needs CAP_SYS_RESOURCE;
// - cgroupfs and a file events log: there is no systemd to ask.
// Each node has its own storage, run and tmp directories, so two nodes never see each other's
// containers, as two hosts would not.
//
// An image is a rootfs tarball imported with `podman import`: kolla's entry points
// (kolla_start, kolla_set_configs, sudo) and the lab's nova-manage, nova-status and
// placement-manage, with /etc/nova-lab-release naming its release; the node binaries and
// libraries come from the host through the containers' default volumes (containers.conf), so
// an image is a few kilobytes and builds in well under a second.
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NOVA_UNITS, nodeLayout, stateLayout } from './node/layout';

const run = promisify(execFile);

export interface KollaContainer {
  /** The lab unit whose stand-in the container runs (heartbeats, the cloud's service rows). */
  unit: string;
  container: string;
  /** kolla's service directory under configDir. */
  service: string;
  image: string;
}

export const KOLLA_CONTAINERS: KollaContainer[] = [
  {
    unit: NOVA_UNITS.superConductor,
    container: 'nova_super_conductor',
    service: 'nova-super-conductor',
    image: 'nova-conductor',
  },
  { unit: NOVA_UNITS.cellConductor, container: 'nova_conductor', service: 'nova-conductor', image: 'nova-conductor' },
  { unit: NOVA_UNITS.scheduler, container: 'nova_scheduler', service: 'nova-scheduler', image: 'nova-scheduler' },
  { unit: NOVA_UNITS.metadata, container: 'nova_metadata', service: 'nova-metadata', image: 'nova-api' },
  { unit: NOVA_UNITS.console, container: 'nova_novncproxy', service: 'nova-novncproxy', image: 'nova-novncproxy' },
  { unit: NOVA_UNITS.placement, container: 'placement_api', service: 'placement-api', image: 'placement-api' },
  { unit: NOVA_UNITS.api, container: 'nova_api', service: 'nova-api', image: 'nova-api' },
  { unit: NOVA_UNITS.compute, container: 'nova_compute', service: 'nova-compute', image: 'nova-compute' },
];
const IMAGES = [...new Set(KOLLA_CONTAINERS.map((c) => c.image))];

export const kollaLayout = (stateDir: string) => ({
  configDir: join(stateDir, 'kolla'),
  registry: join(stateDir, 'registry'),
  build: join(stateDir, 'podman-build'),
});

export const registryAddress = (subnet: string) => `${subnet}.250:5000`;
export const imagePrefix = (subnet: string) => `${registryAddress(subnet)}/kolla`;

/** The podman config files of one node (or of the lab's build store), as environment variables. */
export function podmanEnv(dir: string): Record<string, string> {
  return {
    CONTAINERS_CONF: join(dir, 'containers.conf'),
    CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
    CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
  };
}

export const nodePodmanDir = (root: string) => join(root, 'podman');

function writePodmanConfig(dir: string, stateDir: string, subnet: string, env: Record<string, string>): void {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const q = (s: string) => JSON.stringify(s);
  const volumes = ['/usr/bin', '/usr/lib', '/usr/lib64', '/usr/sbin', '/usr/share']
    .filter((d) => existsSync(d))
    .map((d) => q(`${d}:${d}:ro`));
  volumes.push(q(`${stateDir}:${stateDir}`));
  writeFileSync(
    join(dir, 'containers.conf'),
    `[containers]
default_ulimits = ["nofile=16384:16384", "nproc=8192:8192"]
volumes = [${volumes.join(', ')}]
env = [${Object.entries(env)
      .map(([k, v]) => q(`${k}=${v}`))
      .join(', ')}]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = ${q(join(dir, 'events.log'))}
tmp_dir = ${q(join(dir, 'tmp'))}
`,
  );
  writeFileSync(
    join(dir, 'storage.conf'),
    `[storage]
driver = "overlay"
runroot = ${q(join(dir, 'run'))}
graphroot = ${q(join(dir, 'storage'))}
`,
  );
  writeFileSync(
    join(dir, 'registries.conf'),
    `unqualified-search-registries = []

[[registry]]
location = ${q(registryAddress(subnet))}
insecure = true
`,
  );
}

async function podman(dir: string, args: string[]): Promise<string> {
  try {
    const r = await run('podman', args, { env: { ...process.env, ...podmanEnv(dir) }, maxBuffer: 16 << 20 });
    return r.stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`podman ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** A rootfs for one release: kolla's entry points and the lab's nova programs; returns its tarball. */
async function buildRootfs(stateDir: string, release: string): Promise<string> {
  const s = stateLayout(stateDir);
  const build = kollaLayout(stateDir).build;
  const root = mkdtempSync(join(build, `rootfs-${release}-`));
  const dirs = ['usr/local/bin', 'usr/bin', 'usr/lib', 'usr/lib64', 'usr/sbin', 'usr/share', 'etc/nova'];
  for (const d of [...dirs, 'var/lib/kolla/config_files', 'tmp', 'proc', 'sys', 'dev', 'run'])
    mkdirSync(join(root, d), { recursive: true });
  for (const [link, target] of [
    ['bin', 'usr/bin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
    ['sbin', 'usr/sbin'],
  ] as const)
    symlinkSync(target, join(root, link));
  chmodSync(join(root, 'tmp'), 0o1777);
  writeFileSync(join(root, 'etc/nova-lab-release'), `${release}\n`);
  const bin = (name: string, text: string) => {
    writeFileSync(join(root, 'usr/local/bin', name), text);
    chmodSync(join(root, 'usr/local/bin', name), 0o755);
  };
  const lib = (mod: string, call: string) =>
    `#!${process.execPath}\nrequire(${JSON.stringify(join(s.lib, `${mod}.js`))}).${call};\n`;
  bin('kolla_set_configs', lib('kolla', 'setConfigs()'));
  bin('kolla_command', lib('kolla', 'printCommand()'));
  bin('kolla_start', '#!/bin/sh\nkolla_set_configs || exit 1\nexec sh -c "$(kolla_command)"\n');
  // kolla's images run as their service's user and reach root through sudo -E; here it is root.
  bin('sudo', '#!/bin/sh\n[ "$1" = -E ] && shift\nexec "$@"\n');
  bin('nova-manage', lib('novaManage', 'main(process.argv.slice(2))'));
  bin('nova-status', lib('novaStatus', 'main(process.argv.slice(2))'));
  bin('placement-manage', lib('placementManage', 'main(process.argv.slice(2))'));
  bin('python3', lib('python', 'main(process.argv.slice(2))'));
  const tar = join(build, `rootfs-${release}.tar`);
  await run('tar', ['-C', root, '-cf', tar, '.']);
  rmSync(root, { recursive: true, force: true });
  return tar;
}

/** The registry on the lab's subnet (Debian's docker-registry, distribution 2.8). */
async function startRegistry(stateDir: string, subnet: string): Promise<void> {
  const k = kollaLayout(stateDir);
  mkdirSync(join(k.registry, 'data'), { recursive: true });
  const config = join(k.registry, 'config.yml');
  writeFileSync(
    config,
    `version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: ${join(k.registry, 'data')}
http:
  addr: ${registryAddress(subnet)}
`,
  );
  const url = `http://${registryAddress(subnet)}/v2/`;
  const up = async () => {
    try {
      return (await fetch(url)).ok;
    } catch {
      return false;
    }
  };
  if (await up()) return;
  const log = openSync(join(k.registry, 'registry.log'), 'a');
  // NOVA_LAB_STATE in its environment: lab down's sweep stops it with the rest of the lab.
  const child = spawn('docker-registry', ['serve', config], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, NOVA_LAB_STATE: stateDir },
    cwd: k.registry,
  });
  closeSync(log);
  child.unref();
  const deadline = Date.now() + 10_000;
  while (!(await up())) {
    if (Date.now() > deadline)
      throw new Error(
        `the lab's registry did not answer at ${url}: ${readFileSync(join(k.registry, 'registry.log'), 'utf8').slice(-500)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Both releases' images, built and pushed to the lab's registry; a second lab up reuses them. */
export async function prepareKollaImages(stateDir: string, subnet: string, releases: string[]): Promise<void> {
  const k = kollaLayout(stateDir);
  mkdirSync(k.build, { recursive: true });
  writePodmanConfig(k.build, stateDir, subnet, { NOVA_LAB_STATE: stateDir });
  await startRegistry(stateDir, subnet);
  const prefix = imagePrefix(subnet);
  for (const release of releases) {
    const names = IMAGES.map((i) => `${prefix}/${i}:${release}`);
    const pushed = await fetch(`http://${registryAddress(subnet)}/v2/kolla/${IMAGES.at(-1)}/manifests/${release}`, {
      headers: {
        Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
      },
    }).then(
      (r) => r.ok,
      () => false,
    );
    if (pushed) continue;
    const tar = await buildRootfs(stateDir, release);
    await podman(k.build, [
      'import',
      '--change',
      'CMD ["kolla_start"]',
      '--change',
      'ENV NOVA_LAB_RELEASE_FILE=/etc/nova-lab-release',
      '--change',
      'ENV NOVA_LAB_NOVA_CONF=/etc/nova/nova.conf',
      tar,
      names[0]!,
    ]);
    for (const n of names.slice(1)) await podman(k.build, ['tag', names[0]!, n]);
    for (const n of names) await podman(k.build, ['push', '--tls-verify=false', '--quiet', n]);
  }
}

/** kolla's config.json and the service's config file, under <configDir>/<service>/. */
export function writeKollaConfigs(stateDir: string, files: { service: string; nova: string }[]): void {
  const k = kollaLayout(stateDir);
  for (const f of files) {
    const dir = join(k.configDir, f.service);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, f.service === 'placement-api' ? 'placement.conf' : 'nova.conf');
    const dest = f.service === 'placement-api' ? '/etc/placement/placement.conf' : '/etc/nova/nova.conf';
    // kolla's nova.conf.j2 pins [upgrade_levels] compute = auto for good; written once, so
    // that a second lab up keeps what the upgrade did.
    if (!existsSync(conf)) writeFileSync(conf, `${f.nova.trimEnd()}\n\n[upgrade_levels]\ncompute = auto\n`);
    writeFileSync(
      join(dir, 'config.json'),
      `${JSON.stringify(
        {
          command: `exec ${process.execPath} ${join(stateLayout(stateDir).lib, 'service.js')} "$NOVA_LAB_ROOT" "$NOVA_LAB_UNIT"`,
          config_files: [{ source: `/var/lib/kolla/config_files/${conf.split('/').pop()}`, dest }],
        },
        null,
        2,
      )}\n`,
    );
  }
}

/** A node's podman config: its own storage, the lab's registry, the lab node's environment. */
export function writeNodePodman(stateDir: string, subnet: string, root: string, env: Record<string, string>): void {
  writePodmanConfig(nodePodmanDir(root), stateDir, subnet, env);
}

/** Pulls the old release's images and starts the node's containers as kolla-ansible deploys them. */
export async function startKollaContainers(
  stateDir: string,
  subnet: string,
  root: string,
  units: string[],
  release: string,
): Promise<void> {
  const dir = nodePodmanDir(root);
  const k = kollaLayout(stateDir);
  for (const c of KOLLA_CONTAINERS.filter((x) => units.includes(x.unit))) {
    const state = await podman(dir, ['container', 'inspect', '-f', '{{ .State.Running }}', c.container]).catch(
      () => '',
    );
    if (state.trim() === 'true') continue;
    if (state) {
      await podman(dir, ['start', c.container]);
      continue;
    }
    const image = `${imagePrefix(subnet)}/${c.image}:${release}`;
    await podman(dir, ['pull', '--quiet', image]);
    await podman(dir, [
      'run',
      '-d',
      '--name',
      c.container,
      '--network',
      'host',
      // The stand-in cloud tells a live service by its host pid, as it does a unit's.
      '--pid',
      'host',
      '--restart',
      'no',
      '-e',
      'KOLLA_CONFIG_STRATEGY=COPY_ALWAYS',
      '-e',
      `KOLLA_SERVICE_NAME=${c.service}`,
      '-e',
      `NOVA_LAB_UNIT=${c.unit}`,
      '-v',
      `${join(k.configDir, c.service)}/:/var/lib/kolla/config_files/:ro`,
      image,
    ]);
  }
  // Up when each service has reported in, as the stand-in's systemctl waits for its heartbeat.
  const l = nodeLayout(root);
  const deadline = Date.now() + 20_000;
  for (const c of KOLLA_CONTAINERS.filter((x) => units.includes(x.unit))) {
    const started = Date.now() - 60_000;
    for (;;) {
      try {
        const hb = JSON.parse(readFileSync(l.heartbeat(c.unit), 'utf8')) as { at: string };
        if (Date.parse(hb.at) > started) break;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) {
        const logs = await podman(dir, ['logs', '--tail', '20', c.container]).catch((e: Error) => e.message);
        throw new Error(`${c.container} on ${root} did not report in: ${logs}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Podman's overlay driver keeps its storage directory mounted (a private bind of
 * <graphroot>/overlay, and each running container's rootfs) after its containers are gone:
 * unmounted here, so that the lab's state directory can be removed.
 */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

/** Processes whose command line names `dir`: conmon, and the `podman container cleanup` it starts. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

const mountsUnder = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => {
      const m = l.split(' ')[4] ?? '';
      return m === dir || m.startsWith(`${dir}/`);
    });

/**
 * Removes every container of a node (lab down); images stay in its storage for the next lab up.
 * A container's exit makes conmon start `podman container cleanup`, which mounts the storage
 * again after `rm` returns: seen once (the overlay still mounted when the test removed its state
 * directory, EBUSY). So the mounts are removed once no process of the node's podman is left.
 */
export async function stopKollaContainers(root: string): Promise<void> {
  const dir = nodePodmanDir(root);
  if (!existsSync(join(dir, 'containers.conf'))) return;
  await podman(dir, ['rm', '--all', '--force', '--time', '2']).catch(() => undefined);
  for (let i = 0; i < 40; i++) {
    if (!processesUsing(dir).length) {
      unmountUnder(dir);
      if (!mountsUnder(dir)) return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  unmountUnder(dir);
}

/** The lab's build store, unmounted as a node's is. */
export function stopKollaBuild(stateDir: string): void {
  unmountUnder(kollaLayout(stateDir).build);
}
