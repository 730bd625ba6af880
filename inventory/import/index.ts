// `nova-upgrade inventory import --from kolla-ansible|openstack-ansible|ansible FILE…`: reads the
// inventories an operator already keeps and writes a nova-upgrade inventory, every assumed value
// commented, or refuses with a sentence naming what it cannot map.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ImportError, parseAnsibleInventory } from './ansibleInventory';
import { importAnsible } from './ansible';
import { importKolla, readGlobals } from './kolla';
import type { ImportOptions } from './options';
import { importOsa, readGeneratedInventory, readUserConfig } from './osa';

export const IMPORT_SOURCES = ['kolla-ansible', 'openstack-ansible', 'ansible'] as const;
export type ImportSource = (typeof IMPORT_SOURCES)[number];
export { ImportError };
export type { ImportOptions };

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ImportError(
      `${path}: cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/** Returns the inventory's YAML text. */
export function importInventory(from: ImportSource, files: string[], opts: ImportOptions = {}): string {
  if (files.length === 0) throw new ImportError(`--from ${from} needs at least one file`);
  const texts = files.map((f) => ({ path: f, text: read(f) }));
  if (from === 'kolla-ansible') {
    // globals.yml by its name or its keys; the rest is the INI inventory.
    const isGlobals = (f: { path: string; text: string }) =>
      /globals\.ya?ml$/.test(basename(f.path)) || /^\s*#?\s*kolla_[a-z_]+:/m.test(f.text);
    const globals = texts.filter(isGlobals);
    const inventories = texts.filter((f) => !isGlobals(f));
    if (inventories.length !== 1)
      throw new ImportError(
        `--from kolla-ansible takes one inventory (multinode) and optionally globals.yml; got ${inventories.length} inventories: ${inventories.map((f) => f.path).join(', ') || 'none'}`,
      );
    if (globals.length > 1)
      throw new ImportError(`--from kolla-ansible takes one globals.yml; got ${globals.map((f) => f.path).join(', ')}`);
    const inv = parseAnsibleInventory(inventories[0]!.text, inventories[0]!.path);
    const g = globals[0] ? { vars: readGlobals(globals[0].text, globals[0].path), source: globals[0].path } : undefined;
    return importKolla(inv, g, opts).render(inventories[0]!.path);
  }
  if (from === 'openstack-ansible') {
    const generated = texts.filter((f) => f.path.endsWith('.json'));
    const configs = texts.filter((f) => !f.path.endsWith('.json'));
    if (configs.length !== 1)
      throw new ImportError(
        `--from openstack-ansible takes one openstack_user_config.yml and optionally openstack_inventory.json; got ${configs.length} YAML files`,
      );
    const config = { vars: readUserConfig(configs[0]!.text, configs[0]!.path), source: configs[0]!.path };
    const gen = generated[0] ? readGeneratedInventory(generated[0].text, generated[0].path) : undefined;
    return importOsa(config, gen, opts).render(configs[0]!.path);
  }
  if (files.length !== 1) throw new ImportError(`--from ansible takes one inventory file; got ${files.length}`);
  return importAnsible(parseAnsibleInventory(texts[0]!.text, texts[0]!.path), opts).render(texts[0]!.path);
}
