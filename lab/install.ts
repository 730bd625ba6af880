// Puts the node-side programs in place under the state directory: the node scripts (compiled
// from lab/node, or copied when the lab itself runs compiled), the stand-in commands on the
// nodes' PATH, nova's version documents and the tempest stand-in's suite.
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { stateLayout } from './node/layout';

/** Stand-in command → the node module whose main(argv) it runs. */
export const STAND_INS: Record<string, string> = {
  systemctl: 'systemctl',
  journalctl: 'journalctl',
  'nova-manage': 'novaManage',
  'nova-status': 'novaStatus',
  openstack: 'openstack',
  'placement-manage': 'placementManage',
  tempest: 'tempest',
  'lab-install-code': 'installCode',
  'lab-cloud': 'labCloud',
  // nova's Python for the service-version read; anything else goes to /usr/bin/python3.
  python3: 'python',
};

// Real sudo's secure_path would reset PATH and lose the stand-ins; this one keeps the caller's
// environment and, like sudo, accepts VAR=value assignments before the command.
const SUDO = `#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -u|-g|-C|-D|-h|-p|-r|-t|-U) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: sudo [-H] command" >&2; exit 1; }
exec env "$@"
`;

/** The first of lab/<rel> beside this file or in the source tree (when running from dist/). */
export function labAsset(rel: string): string {
  const candidates = [join(__dirname, rel), join(__dirname, '..', '..', 'lab', rel)];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`lab asset ${rel} not found (looked in ${candidates.join(', ')})`);
  return found;
}

function installNodeScripts(lib: string): void {
  mkdirSync(lib, { recursive: true });
  const src = join(__dirname, 'node');
  for (const file of readdirSync(src)) {
    const from = join(src, file);
    if (file.endsWith('.ts') && !file.endsWith('.d.ts')) {
      const out = ts.transpileModule(readFileSync(from, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: file,
      });
      writeFileSync(join(lib, file.replace(/\.ts$/, '.js')), out.outputText);
    } else if (file.endsWith('.js')) {
      cpSync(from, join(lib, file));
    }
  }
}

export function installLab(stateDir: string): void {
  const s = stateLayout(stateDir);
  installNodeScripts(s.lib);
  mkdirSync(s.bin, { recursive: true });
  for (const [cmd, mod] of Object.entries(STAND_INS)) {
    const path = join(s.bin, cmd);
    writeFileSync(
      path,
      `#!${process.execPath}\nrequire(${JSON.stringify(join(s.lib, `${mod}.js`))}).main(process.argv.slice(2));\n`,
    );
    chmodSync(path, 0o755);
  }
  writeFileSync(join(s.bin, 'sudo'), SUDO);
  chmodSync(join(s.bin, 'sudo'), 0o755);
  // A real-nova node runs the real nova-manage, nova-status, placement-manage and openstack
  // from its own bin directory; only these stand in for what systemd and git would do.
  mkdirSync(s.realBin, { recursive: true });
  for (const cmd of ['systemctl', 'journalctl', 'sudo', 'lab-install-code'])
    cpSync(join(s.bin, cmd), join(s.realBin, cmd));
  cpSync(labAsset('fixtures/nova-versions'), s.fixtures, { recursive: true });
  mkdirSync(s.tempest, { recursive: true });
  cpSync(labAsset('tempest'), s.tempest, { recursive: true, filter: (p) => !/__pycache__|\.pyc$/.test(p) });
}
