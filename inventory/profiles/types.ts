import type { CommandName } from '../commands';
import type { Role, Service } from '../schema';
import type { ProfileName } from './names';

/**
 * Everything that differs from one deployment to another, as data: the command templates
 * (installing code, reading a service's identity, restarting, nova-manage, the openstack CLI),
 * the services each role runs, the config files the pin step edits, the cells and the
 * clouds.yaml entry. The workflow never asks which profile it runs: it only renders templates.
 */
export interface Profile {
  name: ProfileName;
  /** One sentence: what this profile assumes about the nodes. */
  summary: string;
  commands: Record<CommandName, string>;
  services: Record<Role, Service[]>;
  configFiles: Record<Role, string[]>;
  cells: { name: string; configFile: string }[];
  osCloud: string;
}
