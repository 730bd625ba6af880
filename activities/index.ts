// Every effect on the world, grouped by the system it touches. The worker registers the
// object this returns; workflows see only its type.
import { createHaproxyActivities } from './haproxy/activities';
import { createProbeActivities, type StopRequested } from './http/probe';
import type { ProbeStopEvents } from './http/probeStop';
import { createLbSetupActivities } from './lb/activities';
import { createVersionActivities } from './http/versions';
import { createComputeActivities } from './nova/computes';
import { createCellActivities } from './nova/cells';
import { createConfigActivities } from './nova/config';
import { createKeystoneActivities } from './nova/keystone';
import { createManageActivities } from './nova/manage';
import { createServiceActivities } from './nova/services';
import { createServiceRecordActivities } from './nova/serviceRecords';
import { createNotifyActivities } from './notify/webhook';
import { createSshPreflightActivities } from './ssh/preflight';
import type { RemoteRunner } from './ssh/types';
import { createTempestActivities } from './tempest/run';

export interface ActivityDeps {
  runner: RemoteRunner;
  /** Lets the VIP probe ask its workflow whether the window is over; the worker wires it. */
  probeStopRequested?: StopRequested;
  /** The same answer by event, from the workflow's `probeStop` sink in this worker. */
  probeStopEvents?: ProbeStopEvents;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createHaproxyActivities(deps),
    ...createLbSetupActivities(deps),
    ...createManageActivities(deps),
    ...createConfigActivities(deps),
    ...createCellActivities(deps),
    ...createServiceRecordActivities(deps),
    ...createServiceActivities(deps),
    ...createComputeActivities(deps),
    ...createKeystoneActivities(deps),
    ...createTempestActivities(deps),
    ...createVersionActivities(),
    ...createProbeActivities({
      ...(deps.probeStopRequested ? { stopRequested: deps.probeStopRequested } : {}),
      ...(deps.probeStopEvents ? { stopEvents: deps.probeStopEvents } : {}),
    }),
    ...createNotifyActivities(),
    ...createSshPreflightActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
