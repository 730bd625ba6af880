// RDO (CentOS Stream, RHEL and their rebuilds): openstack-nova-* systemd units, one
// /etc/nova/nova.conf, nova-manage as the nova user, code installed by dnf.
import { packagedCommands } from './packages';
import type { Profile } from './types';

// RDO's openstack-nova.spec restarts its units on upgrade (%systemd_postun_with_restart for
// api, metadata-api, conductor, scheduler, compute and novncproxy). With SYSTEMD_OFFLINE=1
// systemctl does not talk to PID 1 (systemd's ENVIRONMENT.md), so the scriptlets neither
// restart nor mark the units; the daemon-reload afterwards only loads changed unit files,
// and the runbook restarts each service in its own turn.
const dnfUpgrade = (packages: string) =>
  `sudo env SYSTEMD_OFFLINE=1 dnf -y upgrade ${packages} && sudo systemctl daemon-reload`;

export const rdo: Profile = {
  name: 'rdo',
  summary: 'RDO packages: openstack-nova-* systemd units, /etc/nova/nova.conf, dnf upgrades that restart nothing',
  commands: packagedCommands({
    installCode: dnfUpgrade("'openstack-nova-*' python3-nova"),
    installPlacement: dnfUpgrade("'openstack-placement-*' python3-placement"),
    // openstack-placement-api runs under httpd; a graceful reload restarts its WSGI daemons.
    placementRestart: 'sudo systemctl reload httpd',
  }),
  services: {
    controller: [
      { unit: 'openstack-nova-conductor', kind: 'conductor' },
      { unit: 'openstack-nova-scheduler', kind: 'scheduler' },
      { unit: 'openstack-nova-metadata-api', kind: 'metadata' },
      { unit: 'openstack-nova-novncproxy', kind: 'console' },
    ],
    api: [{ unit: 'openstack-nova-api', kind: 'api' }],
    compute: [{ unit: 'openstack-nova-compute', kind: 'compute' }],
    lb: [],
  },
  configFiles: {
    controller: ['/etc/nova/nova.conf'],
    api: ['/etc/nova/nova.conf'],
    compute: ['/etc/nova/nova.conf'],
    lb: [],
  },
  cells: [{ name: 'cell1', configFile: '/etc/nova/nova.conf' }],
  osCloud: 'admin',
};
