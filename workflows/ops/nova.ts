// nova-manage, nova-status, nova.conf and keystone's catalog, as the runbook calls them. Each
// function is one activity; what the runbook decides from the answers lives in runbook/.
import { proxyActivities } from '@temporalio/workflow';
import type { createCellActivities } from '../../activities/nova/cells';
import type { createConfigActivities } from '../../activities/nova/config';
import type { createKeystoneActivities } from '../../activities/nova/keystone';
import type { createManageActivities } from '../../activities/nova/manage';
import type { PinningRecord, createServiceRecordActivities } from '../../activities/nova/serviceRecords';
import { apiConfigOf, cmd, placementInstallCommand, targetOf } from '../../common/topology';
import { DEFAULT_COMMANDS } from '../../inventory/commands';
import { SERVICE_ROWS_SCRIPT } from '../../common/serviceRowsScript';
import type { Inventory } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

type NovaActivities = ReturnType<typeof createManageActivities> &
  ReturnType<typeof createCellActivities> &
  ReturnType<typeof createServiceRecordActivities> &
  ReturnType<typeof createConfigActivities> &
  ReturnType<typeof createKeystoneActivities>;

export function novaOps(inv: Inventory) {
  const acts = proxyActivities<NovaActivities>(proxyDefaults(inv));
  const ctl = () => targetOf(inv, inv.controller);
  const stateDir = inv.remoteStateDir;
  return {
    pointComputeEndpointAtVip: () =>
      acts.pointComputeEndpointAtVip.executeWithOptions(
        activityOptions(inv, 'short', `point keystone's compute endpoint at ${inv.vip.computeEndpointUrl}`),
        [
          {
            target: ctl(),
            osCloud: inv.openstack.osCloud,
            listTemplate: inv.commands.endpointList,
            setTemplate: inv.commands.endpointSet,
            url: inv.vip.computeEndpointUrl,
            // Inventories of runs started before these existed carry neither.
            ...(inv.openstack.region !== undefined ? { region: inv.openstack.region } : {}),
            interfaces: inv.vip.computeEndpointInterfaces ?? ['public'],
          },
        ],
      ),
    checkCells: () =>
      acts.checkCells.executeWithOptions(activityOptions(inv, 'short', `read nova's cells on ${inv.controller}`), [
        {
          target: ctl(),
          command: cmd(inv, 'cellList'),
          cells: inv.cells.map((c) => c.name),
          // nova-manage's db sync without --local_cell also syncs cell0 (nova/cmd/manage.py, DbCommands.sync),
          // as the package profiles' templates run it: their one nova.conf has no cell0 of its own.
          cell0SyncedWithEveryCell: !inv.commands.dbSync.includes('--local_cell'),
        },
      ]),
    checkServiceVersions: () =>
      acts.checkServiceVersions.executeWithOptions(
        activityOptions(inv, 'short', `read every cell's service versions on ${inv.controller}`),
        [
          {
            target: ctl(),
            command: cmd(inv, 'serviceVersions', { script: SERVICE_ROWS_SCRIPT, apiConfig: apiConfigOf(inv) }),
            to: inv.release.to,
            inventoryComputeHosts: inv.nodes
              .filter((n) => n.services.some((s) => s.kind === 'compute'))
              .map((n) => n.novaHost),
            excludedHosts: inv.nodes
              .filter((n) => inv.compute.exclude.includes(n.name) || inv.compute.exclude.includes(n.novaHost))
              .map((n) => n.novaHost),
            cells: inv.cells.map((c) => c.name),
          },
        ],
      ),
    deleteServiceRecords: (records: PinningRecord[]) =>
      acts.deleteServiceRecords.executeWithOptions(
        activityOptions(inv, 'short', `delete ${records.length} service record(s) the operator chose to delete`),
        [
          {
            target: ctl(),
            listCommand: cmd(inv, 'serviceList'),
            records,
            deleteCommands: Object.fromEntries(
              records.map((r) => [r.ref, cmd(inv, 'computeServiceDelete', { id: r.ref })]),
            ),
          },
        ],
      ),
    installCode: (node: string, key: string) =>
      acts.installCode.executeWithOptions(activityOptions(inv, 'long', `install nova ${inv.release.to} on ${node}`), [
        {
          target: targetOf(inv, node),
          command: cmd(inv, 'installCode', { version: inv.release.to, node }),
          versionCommand: cmd(inv, 'codeVersion'),
          version: inv.release.to,
          key,
          stateDir,
          timeoutMs: inv.timeouts.commandSeconds * 1000,
        },
      ]),
    readCodeVersion: (node: string) =>
      acts.readCodeVersion.executeWithOptions(
        activityOptions(inv, 'short', `read the nova version installed on ${node}`),
        [{ target: targetOf(inv, node), command: cmd(inv, 'codeVersion') }],
      ),
    syncApiDb: (key: string) =>
      acts.syncApiDb.executeWithOptions(activityOptions(inv, 'long', 'nova-manage api_db sync'), [
        { target: ctl(), command: cmd(inv, 'apiDbSync'), key, stateDir },
      ]),
    syncCellDb: (cell: { name: string; configFile: string }, key: string) =>
      acts.syncCellDb.executeWithOptions(activityOptions(inv, 'long', `nova-manage db sync for ${cell.name}`), [
        {
          target: ctl(),
          command: cmd(inv, 'dbSync', { config: cell.configFile, cell: cell.name }),
          key,
          stateDir,
          cell: cell.name,
        },
      ]),
    installPlacement: (key: string) =>
      acts.installPlacement.executeWithOptions(
        activityOptions(inv, 'long', `install placement for nova ${inv.release.to}`),
        [
          {
            target: ctl(),
            command: placementInstallCommand(inv),
            release: inv.release.to,
            key,
            stateDir,
            timeoutMs: inv.timeouts.commandSeconds * 1000,
          },
        ],
      ),
    upgradePlacement: (key: string) =>
      acts.upgradePlacement.executeWithOptions(activityOptions(inv, 'long', 'upgrade placement'), [
        {
          target: ctl(),
          command: cmd(inv, 'upgradePlacement', { version: inv.release.to, node: inv.controller }),
          key,
          stateDir,
        },
      ]),
    setUpgradeLevelsCompute: (node: string, path: string) =>
      acts.setUpgradeLevelsCompute.executeWithOptions(
        activityOptions(inv, 'short', `set [upgrade_levels] compute = auto in ${path} on ${node}`),
        [
          {
            target: targetOf(inv, node),
            path,
            value: 'auto',
            readCommand: cmd(inv, 'readFile', { path }),
            writeTemplate: (inv.commands as Partial<Inventory['commands']>).writeFile ?? DEFAULT_COMMANDS.writeFile,
            key: 'nova-upgrade',
          },
        ],
      ),
    runUpgradeCheck: () =>
      acts.runUpgradeCheck.executeWithOptions(activityOptions(inv, 'short', 'nova-status upgrade check'), [
        { target: ctl(), command: cmd(inv, 'upgradeCheck') },
      ]),
    runOnlineDataMigrations: (key: string) =>
      acts.runOnlineDataMigrations.executeWithOptions(
        activityOptions(inv, 'long', 'nova-manage db online_data_migrations until done'),
        [
          {
            target: ctl(),
            cells: inv.cells.map((c) => ({
              name: c.name,
              command: cmd(inv, 'onlineDataMigrations', {
                maxCount: 1000,
                apiConfig: inv.apiConfigFile,
                config: c.configFile,
                cell: c.name,
              }),
            })),
            keyPrefix: key,
            stateDir,
            maxRounds: 1000,
          },
        ],
      ),
  };
}

export type NovaOps = ReturnType<typeof novaOps>;
