// One nova service process (conductor, scheduler, metadata, console, compute, placement or
// nova-api). The code version is read once at start, as a Python process imports its code
// once: installing new code changes nothing until the unit restarts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { codeVersion, logEvent, nodeEnv, readTextOr, writeJson, writeText, type NodeEnv } from './env';
import { FAULTS, NOVA_UNITS } from './layout';
import { runApi } from './novaApi';

/** The config file devstack hands each unit with --config-file. */
export function unitConfigFile(env: Pick<NodeEnv, 'node'>, unit: string): string {
  if (unit === NOVA_UNITS.cellConductor) return env.node.cell1Conf;
  if (unit === NOVA_UNITS.compute) return env.node.cpuConf;
  return env.node.novaConf;
}

/** The [upgrade_levels] compute pin a reloaded service would now use; "none" when unset. */
export function upgradeLevelsCompute(text: string): string {
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) section = header[1]!.trim();
    else if (section === 'upgrade_levels') {
      const kv = /^compute\s*[=:]\s*(.*)$/.exec(line);
      if (kv) return kv[1]!.trim() || 'none';
    }
  }
  return 'none';
}

function main(): void {
  const env = nodeEnv();
  const unit = process.argv[3] ?? '';
  const version = codeVersion(env);
  // Test fault: the unit dies at start, as a service whose new code fails to import would.
  const [fUnit, fVersion, fNode] = readTextOr(join(env.state.faults, FAULTS.serviceStart), '').trim().split(/\s+/);
  if (fUnit === unit && (!fVersion || fVersion === version) && (!fNode || fNode === env.name)) {
    process.stderr.write(
      `${unit}: ImportError: cannot import name 'lab_fault' (lab fault serviceStart, nova ${version} on ${env.name})\n`,
    );
    process.exit(1);
  }
  // In a kolla lab container nothing like systemctl records the unit's process: the service does,
  // with its host pid (the lab's containers share the host's pid namespace), so the stand-in
  // cloud and lab status see it as they see a unit's.
  if (process.env.NOVA_LAB_RELEASE_FILE)
    writeJson(env.node.unitState(unit), {
      pid: process.pid,
      startedMonotonic: (process.hrtime.bigint() / 1000n).toString(),
      active: true,
    });
  if (process.env.NOVA_LAB_RELEASE_FILE) logEvent(env, 'start', unit, { pid: process.pid, version, via: 'container' });
  const beat = () =>
    writeText(
      env.node.heartbeat(unit),
      JSON.stringify({ pid: process.pid, unit, version, at: new Date().toISOString() }),
    );

  // oslo.service re-reads its config on SIGHUP (and resets the RPC version caps the upgrade
  // relies on); the code stays what was imported at start.
  process.on('SIGHUP', () => {
    const hups = Number(readTextOr(env.node.hups(unit), '0')) + 1;
    writeText(env.node.hups(unit), `${hups}\n`);
    const pin = upgradeLevelsCompute(readTextOr(unitConfigFile(env, unit), ''));
    logEvent(env, 'hup', unit, { pid: process.pid, version, hups, 'upgrade_levels.compute': pin });
  });

  const ready = () => {
    beat();
    setInterval(beat, 1000);
  };
  if (unit === NOVA_UNITS.api) {
    runApi(env, version, ready);
    return;
  }
  process.on('SIGTERM', () => process.exit(0));
  // Fails like a service whose config is unreadable would, before it ever reports in.
  readFileSync(unitConfigFile(env, unit), 'utf8');
  ready();
}

if (require.main === module) main();
