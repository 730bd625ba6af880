// lab-cloud: knobs tests turn on the lab's cloud from any node — orphan service records and
// fault files.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { addOrphanService } from './cloud';
import { fail, nodeEnv, writeText } from './env';
import { FAULTS } from './layout';

const USAGE = `usage: lab-cloud orphan HOST [BINARY [SERVICE_VERSION]]
       lab-cloud fault ${Object.keys(FAULTS).join('|')} [CONTENT]
       lab-cloud clear-fault ${Object.keys(FAULTS).join('|')}`;

export function main(argv: string[]): void {
  const env = nodeEnv();
  const [verb, name, ...rest] = argv;
  if (verb === 'orphan' && name) {
    const version = rest[1] !== undefined ? Number(rest[1]) : undefined;
    if (version !== undefined && !Number.isInteger(version))
      fail(`lab-cloud orphan: ${rest[1]} is not a service version`, 2);
    const rec = addOrphanService(env.stateDir, name, rest[0], undefined, version);
    return void process.stdout.write(`${rec.id}\n`);
  }
  const file = name && (FAULTS as Record<string, string>)[name];
  if (verb === 'fault' && file) return writeText(join(env.state.faults, file), `${rest.join(' ')}\n`);
  if (verb === 'clear-fault' && file) return rmSync(join(env.state.faults, file), { force: true });
  fail(USAGE, 2);
}
