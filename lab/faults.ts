// Fault injection for tests: files under <stateDir>/cloud/faults that make a stand-in
// misbehave the way the real command would when something is wrong.
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeText } from './node/env';
import { FAULTS, stateLayout } from './node/layout';

export type FaultName = keyof typeof FAULTS;

/**
 * upgradeCheck: JSON { "<check>": { code: 1|2, details } } or { error } (exit 255);
 * onlineDataMigrations: the migration that raises; tempest: the test that fails;
 * serviceStart: `<unit> [<version>] [<node>]`, the unit that exits at start.
 */
export function setLabFault(stateDir: string, name: FaultName, content = ''): void {
  writeText(join(stateLayout(resolve(stateDir)).faults, FAULTS[name]), `${content}\n`);
}

export function clearLabFault(stateDir: string, name: FaultName): void {
  rmSync(join(stateLayout(resolve(stateDir)).faults, FAULTS[name]), { force: true });
}
