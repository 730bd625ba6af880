// What the operator may add on the command line to what the imported files say.
import type { Role } from '../schema';

export interface ImportOptions {
  cloud?: string;
  releaseFrom?: string;
  releaseTo?: string;
  /** nova-api's URL behind the VIP, or the VIP's address (nova-api's port is added). */
  vip?: string;
  /** Plain Ansible inventories: which group gives each role. */
  groups?: Partial<Record<Role, string>>;
  /** OpenStack-Ansible: nova runs on the hosts themselves, not in LXC containers. */
  novaOnMetal?: boolean;
}
