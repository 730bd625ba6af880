// The read behind the service-version preflight: a short Python script run by nova's own Python
// on the controller. Here in common/ because the workflow renders it into the serviceVersions
// template and the activity reads its output.
/** The marker the script prints before its JSON, so nova's own warnings on stdout cannot be mistaken for it. */
export const SERVICE_ROWS_MARKER = 'NOVA_UPGRADE_SERVICE_ROWS';

/**
 * What reads the services rows on the controller, through nova's own code, run by the nova
 * Python (the serviceVersions template: `<nova's python3> -c {script} --config-file {apiConfig}`).
 * Why nova's code and not `mysql`: nova finds each cell's database in the API database's cell
 * mappings (with the credentials in them), which is what `target_cell` does; no credential is
 * parsed or passed here, and the same read works wherever nova-manage works (devstack's venv, a
 * package's python3, a kolla container). `openstack compute service list` cannot replace it: the
 * API shows no service version. Read only: nova.db.main.api.service_get_all is a reader (rows
 * with deleted = 0, as nova counts them); objects.Service is not used because loading a row
 * without a uuid makes it write one (nova/objects/service.py _from_db_object).
 * Checked against nova 31.3.1 and 33.0.2 (nova/config.py parse_args, nova/context.py
 * target_cell, nova/db/main/api.py service_get_all are the same in both). parse_args as
 * nova-manage calls it, RPC included: a cell mapping's transport_url is formatted with
 * CONF.transport_url (nova/objects/cell_mapping.py), an option only the RPC setup registers
 * (without it, on the real lab: "NoSuchOptError: no such option transport_url"); the transport
 * connects lazily, so nothing is sent.
 */
export const SERVICE_ROWS_SCRIPT = [
  '# nova-upgrade: the services rows of every cell, read only',
  'import json, sys',
  'from nova import config, context, objects',
  'from nova.db.main import api as db',
  'config.parse_args(sys.argv)',
  'objects.register_all()',
  'ctxt = context.get_admin_context()',
  't = lambda d: d.isoformat() if d else None',
  'out = []',
  'for cm in objects.CellMappingList.get_all(ctxt):',
  '    with context.target_cell(ctxt, cm) as c:',
  '        rows = [dict(id=s.id, uuid=s.uuid, host=s.host, binary=s.binary, version=s.version,',
  '                     last_seen_up=t(s.last_seen_up), created_at=t(s.created_at),',
  '                     forced_down=bool(s.forced_down), deleted=s.deleted, disabled=bool(s.disabled))',
  '                for s in db.service_get_all(c)]',
  '    out.append(dict(cell=cm.name or cm.uuid, uuid=cm.uuid, rows=rows))',
  `print('${SERVICE_ROWS_MARKER} ' + json.dumps(out))`,
].join('\n');
