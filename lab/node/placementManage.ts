// placement-manage db sync / db version / --version. Placement's release follows nova's
// (2024.2 ships nova 30 and placement 12), so the lab derives one from the other.
import { revisionFor, readSchema, updateSchema } from './cloud';
import { codeVersion, fail, nodeEnv, readTextOr } from './env';

export function placementRelease(novaRelease: string): string {
  const [major, ...rest] = novaRelease.split('.');
  return [String(Number(major) - 18), ...rest].join('.');
}

export function main(argv: string[]): void {
  const env = nodeEnv();
  // Placement's own code when installed on its own (lab-install-code --placement); else nova's pair.
  const own = readTextOr(env.node.placementVersion, '').trim();
  const release = own || placementRelease(codeVersion(env));
  const args = argv.filter((a) => !a.startsWith('--config'));
  if (args[0] === '--version') return void process.stdout.write(`${release}\n`);
  if (args[0] === 'db' && args[1] === 'sync') {
    updateSchema(env.stateDir, (s) => ({ ...s, placement: { release, revision: revisionFor('placement', release) } }));
    return;
  }
  if (args[0] === 'db' && args[1] === 'version')
    return void process.stdout.write(`${readSchema(env.stateDir).placement?.revision ?? 'None'}\n`);
  fail(
    `usage: placement-manage [-h] [--config-file PATH] [--version] {db} ...\nplacement-manage: error: this lab's placement-manage has no "${argv.join(' ')}"`,
    2,
  );
}
