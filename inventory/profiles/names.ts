// The deployment profiles an inventory may name (`profile: kolla`). Its own module, with no
// imports, so the schema can list the names without importing the profiles' data.
export const PROFILE_NAMES = ['devstack', 'ubuntu', 'debian', 'rdo', 'kolla'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export const CONTAINER_ENGINES = ['docker', 'podman'] as const;
export type ContainerEngine = (typeof CONTAINER_ENGINES)[number];
