// Ubuntu's and Debian's own nova packages (Ubuntu's are also what the Ubuntu Cloud Archive
// ships): systemd units named after the programs, one /etc/nova/nova.conf, nova-manage run as
// the nova user, code installed by apt.
import { DEFAULT_COMMANDS } from '../commands';
import type { Profile } from './types';

// The packages' maintainer scripts restart their services on upgrade: nova-api's postinst
// (dh_installsystemd) runs `deb-systemd-invoke restart nova-api.service nova-api-metadata.service`,
// and every nova-* postinst (dh_installinit) `invoke-rc.d <service> restart` (read from
// Debian 12's nova-api, nova-conductor and nova-compute 26.2.2 packages). Both ask
// /usr/sbin/policy-rc.d first, and exit 101 from it means "action forbidden": so the install
// writes one for its duration, and the runbook restarts each service in its own turn, behind
// its drain. A policy-rc.d that is not ours is left alone and the install refuses; ours (it
// says nova-upgrade) is from an interrupted run and is replaced. `--force-confold` keeps the
// operator's config files; only installed nova packages are upgraded (ii in dpkg's database).
// `${binary:Package}` has a colon, so the placeholder check leaves it to dpkg-query.
const POLICY = '/usr/sbin/policy-rc.d';
// In a subshell, so that its `exit` ends only the install and a caller may chain after it.
const aptUpgrade = (packages: string) =>
  '(' +
  [
    `p=${POLICY}; if [ -e $p ] && ! grep -q nova-upgrade $p; then echo "$p exists and is not nova-upgrade's: remove it or install by hand; nothing was installed" >&2; exit 1; fi`,
    `printf '#!/bin/sh\\n# nova-upgrade: no service starts or restarts while packages install\\nexit 101\\n' | sudo tee $p >/dev/null`,
    'sudo chmod 755 $p',
    `sudo apt-get update -q && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --only-upgrade -o Dpkg::Options::=--force-confold $(dpkg-query -W -f '\${db:Status-Abbrev} \${binary:Package}\\n' ${packages} 2>/dev/null | sed -n 's/^ii *//p')`,
  ].join('; ') +
  '; rc=$?; sudo rm -f $p; exit $rc)';

const novaManage = 'sudo -u nova nova-manage';

/**
 * What every distribution package install shares: nova's programs run as the nova user, one
 * nova.conf (root:nova 0640, so read with sudo) whose [database] is the only cell and which has
 * [api_database], so the install guides' plain `db sync` also syncs cell0. The packages and how
 * placement's WSGI server restarts are the distribution's.
 */
export function packagedCommands(d: { installCode: string; installPlacement: string; placementRestart: string }) {
  return {
    ...DEFAULT_COMMANDS,
    codeVersion: `${novaManage} --version`,
    installCode: d.installCode,
    installPlacement: d.installPlacement,
    upgradePlacement: `sudo -u placement placement-manage db sync && ${d.placementRestart}`,
    apiDbSync: `${novaManage} api_db sync`,
    dbSync: `${novaManage} --config-file {config} db sync`,
    upgradeCheck: 'sudo -u nova nova-status upgrade check',
    cellList: `${novaManage} cell_v2 list_cells`,
    // The packages' nova is importable by the system python3; as the nova user, as nova-manage.
    serviceVersions: 'sudo -u nova python3 -c {script} --config-file {apiConfig}',
    onlineDataMigrations: `${novaManage} --config-file {config} db online_data_migrations --max-count {maxCount}`,
    readFile: 'sudo cat {path}',
    tempest: 'cd ~/tempest && tempest run --smoke',
  };
}

function packagesProfile(name: 'ubuntu' | 'debian'): Profile {
  // Ubuntu serves nova-api from apache2 (mod_wsgi, the nova-api package's apache2 site);
  // Debian from uwsgi, as nova-api.service (its init script starts uwsgi_python3 with
  // /etc/nova/nova-api-uwsgi.ini, port 8774). The metadata API is nova-api-metadata on both.
  // Restarting apache2 restarts every WSGI application it serves on that node (placement and
  // keystone on a shared controller): the runbook restarts it behind nova-api's drain only.
  const apiUnit = name === 'ubuntu' ? 'apache2' : 'nova-api';
  // placement-api: apache2 on Ubuntu, uwsgi as placement-api.service on Debian. A graceful
  // apache2 reload keeps nova-api (same apache2) serving while placement's daemons restart.
  const placementRestart = name === 'ubuntu' ? 'sudo systemctl reload apache2' : 'sudo systemctl restart placement-api';
  return {
    name,
    summary: `${name === 'ubuntu' ? 'Ubuntu' : 'Debian'} packages: nova-* systemd units (nova-api under ${name === 'ubuntu' ? 'apache2' : 'uwsgi'}), /etc/nova/nova.conf, apt upgrades behind policy-rc.d`,
    commands: packagedCommands({
      installCode: aptUpgrade("'nova-*' python3-nova"),
      installPlacement: aptUpgrade("'placement-*' python3-placement"),
      placementRestart,
    }),
    services: {
      controller: [
        { unit: 'nova-conductor', kind: 'conductor' },
        { unit: 'nova-scheduler', kind: 'scheduler' },
        { unit: 'nova-api-metadata', kind: 'metadata' },
        { unit: 'nova-novncproxy', kind: 'console' },
      ],
      api: [{ unit: apiUnit, kind: 'api' }],
      compute: [{ unit: 'nova-compute', kind: 'compute' }],
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
}

export const ubuntu = packagesProfile('ubuntu');
export const debian = packagesProfile('debian');
