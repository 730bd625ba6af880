// What a kolla image runs at start, for the kolla lab's images: kolla_set_configs copies the
// files that /var/lib/kolla/config_files/config.json lists (the service's config, mounted from
// <configDir>/<service>/ on the node) into place, as kolla's own does with
// KOLLA_CONFIG_STRATEGY=COPY_ALWAYS; `kolla_start` (a shell script in the image) then runs the
// command config.json names.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

interface KollaConfig {
  command: string;
  config_files?: Array<{ source: string; dest: string }>;
}

const CONFIG = '/var/lib/kolla/config_files/config.json';

export function setConfigs(): void {
  const config = JSON.parse(readFileSync(CONFIG, 'utf8')) as KollaConfig;
  for (const f of config.config_files ?? []) {
    mkdirSync(dirname(f.dest), { recursive: true });
    copyFileSync(f.source, f.dest);
  }
}

export function printCommand(): void {
  process.stdout.write(`${(JSON.parse(readFileSync(CONFIG, 'utf8')) as KollaConfig).command}\n`);
}
