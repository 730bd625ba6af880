// The deployment profiles. `resolveProfile` picks one by the inventory's `profile` and its
// own section (devstack: the venv; kolla: the engine, images and tag).
import { DEVSTACK_VENV } from '../commands';
import { debian, ubuntu } from './packages';
import { devstack } from './devstack';
import { kolla, KOLLA_CONFIG_DIR, type KollaOptions } from './kolla';
import type { ProfileName } from './names';
import { rdo } from './rdo';
import type { Profile } from './types';

export { PROFILE_NAMES, CONTAINER_ENGINES, type ProfileName, type ContainerEngine } from './names';
export type { Profile } from './types';
export { DEVSTACK_VENV, KOLLA_CONFIG_DIR, type KollaOptions };

export function resolveProfile(name: ProfileName, kollaOptions?: KollaOptions): Profile {
  switch (name) {
    case 'devstack':
      return devstack;
    case 'ubuntu':
      return ubuntu;
    case 'debian':
      return debian;
    case 'rdo':
      return rdo;
    case 'kolla':
      if (!kollaOptions) throw new Error('the kolla profile needs its options');
      return kolla(kollaOptions);
  }
}
