// lab-install-code VERSION: what `git checkout {version} && pip install -e` does to a devstack
// node, the lab's installCode command. Running services keep the code they started with.
// On a real-nova lab node it points the node's code links at the release's venvs (nova, and on
// the controller placement too), built beforehand by scripts/openstack-venvs.sh.
import { existsSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { codeVersion, fail, logEvent, nodeEnv, readTextOr, writeText, type NodeEnv } from './env';
import { placementRelease } from './placementManage';
import type { RealNodeConfig } from './layout';

/** rename(2) over the old link: a process resolving the link sees the old or the new venv. */
export function pointLink(link: string, target: string): void {
  const tmp = `${link}.new-${process.pid}`;
  try {
    unlinkSync(tmp);
  } catch {
    /* none left over */
  }
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}

function installReal(env: NodeEnv, real: RealNodeConfig, version: string): void {
  const release = real.releases[version];
  if (!release) {
    fail(
      `error: pathspec '${version}' did not match any file(s) known to git (the lab has venvs for nova ${Object.keys(real.releases).join(', ')} only)`,
      1,
    );
  }
  for (const venv of [release.nova, ...(real.placementLink ? [release.placement] : [])]) {
    if (!existsSync(join(venv, '.nova-upgrade-stamp'))) fail(`${venv} is not built; run scripts/openstack-venvs.sh`, 1);
  }
  pointLink(real.codeLink, release.nova);
  if (real.placementLink) pointLink(real.placementLink, release.placement);
}

/** `--placement NOVA_VERSION`: placement's code paired with that nova release, nova's own left alone. */
function installPlacement(env: NodeEnv, version: string): void {
  const real = env.config.real;
  if (real) {
    const release = real.releases[version];
    if (!release || !real.placementLink) fail(`error: the lab has no placement venv paired with nova ${version}`, 1);
    if (!existsSync(join(release.placement, '.nova-upgrade-stamp')))
      fail(`${release.placement} is not built; run scripts/openstack-venvs.sh`, 1);
    pointLink(real.placementLink, release.placement);
  }
  const before = readTextOr(env.node.placementVersion, '').trim() || 'none';
  const to = placementRelease(version);
  writeText(env.node.placementVersion, `${to}\n`);
  logEvent(env, 'install', 'placement', { from: before, version: to });
  process.stdout.write(`Installed placement ${to} on ${env.name} (was ${before})\n`);
}

export function main(argv: string[]): void {
  const env = nodeEnv();
  const version = argv.find((a) => !a.startsWith('-'));
  if (!version) fail('usage: lab-install-code [--placement] VERSION', 2);
  if (argv.includes('--placement')) return installPlacement(env, version);
  const before = codeVersion(env);
  if (env.config.real) installReal(env, env.config.real, version);
  else if (!existsSync(join(env.state.fixtures, `root-${version}.json`))) {
    fail(`error: pathspec '${version}' did not match any file(s) known to git (the lab has no nova ${version})`, 1);
  }
  writeText(env.node.codeVersion, `${version}\n`);
  logEvent(env, 'install', 'nova', { from: before, version });
  process.stdout.write(
    before === version
      ? `nova ${version} is already installed on ${env.name}\n`
      : `Installed nova ${version} on ${env.name} (was ${before})\n`,
  );
}
