// lab-install-code VERSION: what `git checkout {version} && pip install -e` does to a devstack
// node, the lab's installCode command. Running services keep the code they started with.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { codeVersion, fail, logEvent, nodeEnv, writeText } from './env';

export function main(argv: string[]): void {
  const env = nodeEnv();
  const version = argv.find((a) => !a.startsWith('-'));
  if (!version) fail('usage: lab-install-code VERSION', 2);
  if (!existsSync(join(env.state.fixtures, `root-${version}.json`))) {
    fail(`error: pathspec '${version}' did not match any file(s) known to git (the lab has no nova ${version})`, 1);
  }
  const before = codeVersion(env);
  writeText(env.node.codeVersion, `${version}\n`);
  logEvent(env, 'install', 'nova', { from: before, version });
  process.stdout.write(before === version ? `nova ${version} is already installed on ${env.name}\n` : `Installed nova ${version} on ${env.name} (was ${before})\n`);
}
