// devstack: systemd units devstack@<service>, code in /opt/stack/<project> installed into
// devstack's global venv, configs in /etc/nova. The templates are DEFAULT_COMMANDS.
import { DEFAULT_COMMANDS } from '../commands';
import type { Profile } from './types';

export const devstack: Profile = {
  name: 'devstack',
  summary:
    'devstack: devstack@ systemd units, code in /opt/stack/nova installed into the global venv {venv}, configs in /etc/nova',
  commands: { ...DEFAULT_COMMANDS },
  services: {
    controller: [
      { unit: 'devstack@n-super-cond', kind: 'conductor' },
      { unit: 'devstack@n-cond-cell1', kind: 'conductor' },
      { unit: 'devstack@n-sch', kind: 'scheduler' },
      { unit: 'devstack@n-api-meta', kind: 'metadata' },
      { unit: 'devstack@n-novnc-cell1', kind: 'console' },
    ],
    api: [{ unit: 'devstack@n-api', kind: 'api' }],
    compute: [{ unit: 'devstack@n-cpu', kind: 'compute' }],
    lb: [],
  },
  configFiles: {
    controller: ['/etc/nova/nova.conf', '/etc/nova/nova_cell1.conf'],
    api: ['/etc/nova/nova.conf'],
    compute: ['/etc/nova/nova-cpu.conf'],
    lb: [],
  },
  // devstack's nova.conf points [database] at cell0; each cell's conductor has its own file.
  cells: [
    { name: 'cell0', configFile: '/etc/nova/nova.conf' },
    { name: 'cell1', configFile: '/etc/nova/nova_cell1.conf' },
  ],
  osCloud: 'devstack-admin',
};
