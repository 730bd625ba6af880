// RDO (CentOS Stream, RHEL and their rebuilds): openstack-nova-* systemd units, one
// /etc/nova/nova.conf, nova-manage as the nova user, code installed by dnf.
import { DEFAULT_COMMANDS } from '../commands';
import type { Profile } from './types';

// RDO's openstack-nova.spec restarts its units on upgrade (%systemd_postun_with_restart for
// api, metadata-api, conductor, scheduler, compute and novncproxy). With SYSTEMD_OFFLINE=1
// systemctl does not talk to PID 1 (systemd's ENVIRONMENT.md), so the scriptlets neither
// restart nor mark the units; the daemon-reload afterwards only loads changed unit files,
// and the runbook restarts each service in its own turn.
const dnfUpgrade = (packages: string) =>
  `sudo env SYSTEMD_OFFLINE=1 dnf -y upgrade ${packages} && sudo systemctl daemon-reload`;
const novaManage = 'sudo -u nova nova-manage';

export const rdo: Profile = {
  name: 'rdo',
  summary: 'RDO packages: openstack-nova-* systemd units, /etc/nova/nova.conf, dnf upgrades that restart nothing',
  commands: {
    ...DEFAULT_COMMANDS,
    codeVersion: `${novaManage} --version`,
    installCode: dnfUpgrade("'openstack-nova-*' python3-nova"),
    // openstack-placement-api runs under httpd; a graceful reload restarts its WSGI daemons.
    installPlacement: dnfUpgrade("'openstack-placement-*' python3-placement"),
    upgradePlacement: 'sudo -u placement placement-manage db sync && sudo systemctl reload httpd',
    apiDbSync: `${novaManage} api_db sync`,
    dbSync: `${novaManage} --config-file {config} db sync`,
    upgradeCheck: 'sudo -u nova nova-status upgrade check',
    cellList: `${novaManage} cell_v2 list_cells`,
    onlineDataMigrations: `${novaManage} --config-file {config} db online_data_migrations --max-count {maxCount}`,
    readFile: 'sudo cat {path}',
    tempest: 'cd ~/tempest && tempest run --smoke',
  },
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
