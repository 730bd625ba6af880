// kolla-ansible: every service is a container (docker or podman) named as kolla names it
// (nova_api, nova_conductor, …), its config under <configDir>/<service>/ on the host, copied into
// the container at each start (KOLLA_CONFIG_STRATEGY=COPY_ALWAYS). Read from kolla-ansible's
// roles nova, nova-cell and its module_utils (kolla_docker_worker.py, kolla_podman_worker.py):
//
// - installing = pulling the new images (service-images-pull), before anything stops;
// - nova-manage and nova-status run in one-shot containers of the NEW nova-api image with the
//   service's config (nova_upgrade_checks, the bootstrap and online-data-migration containers):
//   `docker exec` into a running container would reach the old release's code until that
//   container is recreated, so it is used only to read the running code's version;
// - a service takes its new code by recreate_or_restart_container: when the image differs it
//   stops the container, removes it and starts a new one with the same options and the new
//   image; when only its config changed it restarts it;
// - kolla's nova.conf already pins [upgrade_levels] compute = auto (nova.conf.j2), so the pin
//   step finds it done; kolla-ansible restarts nova services instead of sending SIGHUP (reload.yml,
//   after SIGHUP left them broken), and so does this profile.
//
// A service's identity is its container id and start time: a recreate gives a new id, a
// restart a new start time; the state template prints them in systemctl's key=value shape.
import { DEFAULT_COMMANDS } from '../commands';
import type { ContainerEngine } from './names';
import type { Profile } from './types';

export interface KollaOptions {
  engine: ContainerEngine;
  /** Registry and namespace of the images (kolla-ansible's docker_registry/docker_namespace). */
  images: string;
  /** The new images' tag (kolla-ansible's openstack_tag of the target release). */
  tag: string;
  /** kolla-ansible's node_config_directory. */
  configDir: string;
}

export const KOLLA_CONFIG_DIR = '/etc/kolla';
// kolla-ansible's docker_graceful_timeout: what a container gets to stop before SIGKILL. It must
// outlast nova-api's own drain of in-flight requests.
const GRACEFUL_SECONDS = 60;
const OLD_SUFFIX = '-nova-upgrade-old';

// Go templates in --format: always written `{{ x }}` with spaces, so that `{x}` inside never
// reads as one of our placeholders.
export function kollaCommands(o: KollaOptions): Record<keyof typeof DEFAULT_COMMANDS, string> {
  // kolla-ansible runs its container module with become: true; the preflight checks the sudo.
  const e = `sudo ${o.engine}`;
  // The new image of container "$c": the old image's name with the new registry and tag.
  const newImage = [
    `img=$(${e} container inspect -f '{{ .Config.Image }}' "$c") || exit 1`,
    'n=${img##*/}',
    `new=${o.images}/\${n%%:*}:${o.tag}`,
  ].join('\n');
  const ensureImage = `${e} image inspect "$new" >/dev/null 2>&1 || ${e} pull "$new" || exit 1`;
  // The create options kolla_container sets (volumes, network, privileged, pid, ipc, restart
  // policy, environment), read back from the old container. Its environment minus the old
  // image's own ENV, which the new image brings in its own version; HOSTNAME is the engine's.
  const createFromOld = [
    't=$(mktemp)',
    `${e} image inspect -f '{{ range .Config.Env }}{{ println . }}{{ end }}' "$img" > "$t"`,
    `envs=$(${e} container inspect -f '{{ range .Config.Env }}{{ println . }}{{ end }}' "$o" | grep -vxF -f "$t" | grep -v '^HOSTNAME=' | sed "s/'/'\\\\\\\\''/g; s/^/ -e '/; s/\\$/'/" | tr -d '\\n')`,
    'rm -f "$t"',
    `opts=$(${e} container inspect -f '{{ range .HostConfig.Binds }} -v {{ json . }}{{ end }} --network {{ json .HostConfig.NetworkMode }}{{ if .HostConfig.Privileged }} --privileged{{ end }}{{ if .HostConfig.PidMode }} --pid {{ json .HostConfig.PidMode }}{{ end }}{{ if .HostConfig.IpcMode }} --ipc {{ json .HostConfig.IpcMode }}{{ end }}{{ if .HostConfig.RestartPolicy.Name }} --restart {{ json .HostConfig.RestartPolicy.Name }}{{ end }}' "$o") || exit 1`,
    `eval "${e} create --name \\"\\$c\\" $opts $envs \\"\\$new\\"" >/dev/null || exit 1`,
  ].join('\n');
  // recreate_or_restart_container, resumable: an interrupted run left either the old container
  // alone under its temporary name, or the new one beside it.
  const recreate = (then: 'restart' | 'start') =>
    [
      `c={unit}; o="$c${OLD_SUFFIX}"`,
      `${e} container inspect "$c" >/dev/null 2>&1 || ${e} rename "$o" "$c" || exit 1`,
      `${e} rm -f "$o" >/dev/null 2>&1`,
      newImage,
      then === 'restart'
        ? `if [ "$img" = "$new" ]; then exec ${e} restart -t ${GRACEFUL_SECONDS} "$c"; fi`
        : `if [ "$img" = "$new" ]; then exec ${e} start "$c"; fi`,
      ensureImage,
      `${e} stop -t ${GRACEFUL_SECONDS} "$c" >/dev/null && ${e} rename "$c" "$o" || exit 1`,
      createFromOld,
      `${e} rm "$o" >/dev/null && ${e} start "$c"`,
    ].join('\n');
  // One-shot container of the new nova-api image with one service's config, as kolla-ansible's
  // bootstrap containers: kolla_set_configs copies the config in, then the command runs.
  const oneShot = (configDir: string, image: string, command: string) =>
    `${e} run --rm --network host -e KOLLA_CONFIG_STRATEGY=COPY_ALWAYS -v ${configDir}:/var/lib/kolla/config_files/:ro ${o.images}/${image}:${o.tag} bash -c 'sudo -E kolla_set_configs && exec ${command}'`;
  const api = `${o.configDir}/nova-api/`;
  const cellDir = '"$(dirname {config})/"';
  const novaContainers = `${e} ps -a --format '{{ .Names }}' | grep -E '^(nova|placement)_' | grep -v -- '${OLD_SUFFIX}$'`;
  return {
    ...DEFAULT_COMMANDS,
    // The code the node runs next: the new image's once it is pulled, the running container's before.
    codeVersion: [
      `c=$(${novaContainers} | head -n 1)`,
      '[ -n "$c" ] || { echo "no nova container on this node" >&2; exit 1; }',
      newImage,
      `if ${e} image inspect "$new" >/dev/null 2>&1; then exec ${e} run --rm --network none --entrypoint nova-manage "$new" --version; fi`,
      `exec ${e} exec "$c" nova-manage --version`,
    ].join('\n'),
    installCode: [`for c in $(${novaContainers}); do`, newImage, ensureImage, 'done'].join('\n'),
    // The new placement image first, as kolla-ansible's pull precedes its upgrade tasks.
    installPlacement: `${e} pull -q ${o.images}/placement-api:${o.tag}`,
    upgradePlacement: [
      `${oneShot(`${o.configDir}/placement-api/`, 'placement-api', 'placement-manage db sync')} || exit 1`,
      recreate('restart').replace('{unit}', 'placement_api'),
    ].join('\n'),
    apiDbSync: oneShot(api, 'nova-api', 'nova-manage api_db sync'),
    dbSync: oneShot(cellDir, 'nova-api', 'nova-manage db sync --local_cell'),
    upgradeCheck: oneShot(api, 'nova-api', 'nova-status upgrade check'),
    cellList: oneShot(api, 'nova-api', 'nova-manage cell_v2 list_cells'),
    // As cellList, with the read script handed in through the environment (oneShot's command is
    // already inside single quotes); kolla_set_configs puts the API config at /etc/nova/nova.conf.
    serviceVersions: oneShot(
      api,
      'nova-api',
      'python3 -c "$NOVA_UPGRADE_SCRIPT" --config-file /etc/nova/nova.conf',
    ).replace(
      ' -e KOLLA_CONFIG_STRATEGY=COPY_ALWAYS',
      ' -e KOLLA_CONFIG_STRATEGY=COPY_ALWAYS -e NOVA_UPGRADE_SCRIPT={script}',
    ),
    onlineDataMigrations: oneShot(cellDir, 'nova-api', 'nova-manage db online_data_migrations --max-count {maxCount}'),
    serviceState: `${e} container inspect -f 'Identity={{ .Id }} {{ .State.StartedAt }}\nActiveState={{ if .State.Running }}active{{ else }}inactive{{ end }}\nSubState={{ .State.Status }}\nMainPID={{ .State.Pid }}' {unit}`,
    serviceStart: recreate('start'),
    serviceStop: `${e} stop -t ${GRACEFUL_SECONDS} {unit}`,
    serviceRestart: recreate('restart'),
    serviceHup: `${e} restart -t ${GRACEFUL_SECONDS} {unit}`,
    // kolla-ansible writes the service configs root-owned, mode 0660.
    readFile: 'sudo cat {path}',
    tempest: 'cd ~/tempest && tempest run --smoke',
  };
}

export function kolla(o: KollaOptions): Profile {
  const conf = (service: string) => `${o.configDir}/${service}/nova.conf`;
  return {
    name: 'kolla',
    summary: `kolla-ansible: ${o.engine} containers (nova_api, nova_conductor, …), configs under ${o.configDir}/<service>/, images ${o.images}/<service>:${o.tag}`,
    commands: kollaCommands(o),
    services: {
      controller: [
        { unit: 'nova_conductor', kind: 'conductor' },
        { unit: 'nova_scheduler', kind: 'scheduler' },
        { unit: 'nova_metadata', kind: 'metadata' },
        { unit: 'nova_novncproxy', kind: 'console' },
      ],
      api: [{ unit: 'nova_api', kind: 'api' }],
      compute: [{ unit: 'nova_compute', kind: 'compute' }],
      lb: [],
    },
    configFiles: {
      controller: [conf('nova-conductor'), conf('nova-scheduler'), conf('nova-metadata'), conf('nova-novncproxy')],
      api: [conf('nova-api')],
      compute: [conf('nova-compute')],
      lb: [],
    },
    // nova-api's nova.conf points [database] at cell0 (kolla's nova role); the cell's conductor
    // at cell1 (nova-cell role).
    cells: [
      { name: 'cell0', configFile: conf('nova-api') },
      { name: 'cell1', configFile: conf('nova-conductor') },
    ],
    // kolla-ansible post-deploy writes /etc/kolla/clouds.yaml with this entry.
    osCloud: 'kolla-admin',
  };
}
