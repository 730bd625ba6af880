// The runbook's operations, one module per activity module (as in the samples'
// monorepo-folders): each function is one activity, named as the activity is, called with the
// options policy of ./options and a summary that reads like the runbook in the Web UI.
import type { Inventory } from '../../inventory/schema';
import { computeOps } from './computes';
import { haproxyOps } from './haproxy';
import { httpOps } from './http';
import { lbOps } from './lb';
import { notifyOps } from './notify';
import { novaOps } from './nova';
import { serviceOps } from './services';
import { sshOps } from './ssh';
import { tempestOps } from './tempest';

export function createOps(inv: Inventory) {
  return {
    haproxy: haproxyOps(inv),
    lb: lbOps(inv),
    nova: novaOps(inv),
    services: serviceOps(inv),
    computes: computeOps(inv),
    tempest: tempestOps(inv),
    http: httpOps(inv),
    notify: notifyOps(),
    ssh: sshOps(inv),
  };
}

export type Ops = ReturnType<typeof createOps>;
