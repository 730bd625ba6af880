// What devstack would have left in a node's /etc: nova's config files and clouds.yaml, laid
// out under the node root. Written once; the upgrade edits them and a second `lab up` must
// not undo its edits.
import { placementRelease } from './node/placementManage';
import { existsSync } from 'node:fs';
import { writeText } from './node/env';
import { nodeLayout } from './node/layout';

export interface NodeFileInput {
  root: string;
  name: string;
  address: string;
  controllerAddress: string;
  isController: boolean;
  isCompute: boolean;
}

const db = (ctl: string, name: string) => `mysql+pymysql://root:secret@${ctl}/${name}?charset=utf8`;

function novaConf(n: NodeFileInput, cell: 'cell0' | 'cell1'): string {
  const state = `${n.root}/data/nova`;
  return `[DEFAULT]
debug = True
my_ip = ${n.address}
state_path = ${state}
transport_url = rabbit://stackrabbit:secret@${n.controllerAddress}:5672/${cell === 'cell1' ? 'nova_cell1' : ''}
osapi_compute_workers = 2
metadata_workers = 2
graceful_shutdown_timeout = 5
shutdown_timeout = 0
logging_exception_prefix = ERROR %(name)s %(instance)s

[wsgi]
api_paste_config = /etc/nova/api-paste.ini

[api]
auth_strategy = keystone

[api_database]
connection = ${db(n.controllerAddress, 'nova_api')}

[database]
connection = ${db(n.controllerAddress, `nova_${cell}`)}

[keystone_authtoken]
www_authenticate_uri = http://${n.controllerAddress}/identity
auth_url = http://${n.controllerAddress}/identity
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = nova
memcached_servers = ${n.controllerAddress}:11211

[placement]
auth_url = http://${n.controllerAddress}/identity
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = placement
region_name = RegionOne

[oslo_concurrency]
lock_path = ${state}

[scheduler]
workers = 2

[conductor]
workers = 2
`;
}

// devstack strips the database connections from nova-cpu.conf: computes reach the database
// only through the conductor.
export function cpuConf(n: Pick<NodeFileInput, 'root' | 'address' | 'controllerAddress'>): string {
  return `[DEFAULT]
debug = True
my_ip = ${n.address}
state_path = ${n.root}/data/nova
transport_url = rabbit://stackrabbit:secret@${n.controllerAddress}:5672/nova_cell1
compute_driver = fake.FakeDriver
graceful_shutdown_timeout = 5
instances_path = ${n.root}/data/nova/instances

[keystone_authtoken]
auth_url = http://${n.controllerAddress}/identity
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = nova

[placement]
auth_url = http://${n.controllerAddress}/identity
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = placement
region_name = RegionOne

[oslo_concurrency]
lock_path = ${n.root}/data/nova
`;
}

function cloudsYaml(n: NodeFileInput): string {
  const cloud = (name: string, user: string, project: string) => `  ${name}:
    auth:
      auth_url: http://${n.controllerAddress}/identity
      project_name: ${project}
      username: ${user}
      user_domain_id: default
      project_domain_id: default
    region_name: RegionOne
    identity_api_version: 3
`;
  return `clouds:\n${cloud('devstack', 'demo', 'demo')}${cloud('devstack-admin', 'admin', 'admin')}${cloud('devstack-system-admin', 'admin', 'admin')}`;
}

export function writeNodeFiles(n: NodeFileInput, fromVersion: string): void {
  const l = nodeLayout(n.root);
  const once = (path: string, text: string) => {
    if (!existsSync(path)) writeText(path, text);
  };
  once(l.novaConf, novaConf(n, 'cell0'));
  if (n.isController) once(l.cell1Conf, novaConf(n, 'cell1'));
  if (n.isCompute) once(l.cpuConf, cpuConf(n));
  once(l.clouds, cloudsYaml(n));
  once(l.codeVersion, `${fromVersion}\n`);
  if (n.isController) once(l.placementVersion, `${placementRelease(fromVersion)}\n`);
}
