// The scale lab's virtual computes (`lab up --virtual-computes N`): hundreds to thousands of
// nova-compute nodes on this one machine. What a lab node costs today (its own sshd, a Node
// process per service, ~40 MB each) stops the ordinary lab near 100 nodes; a virtual compute
// costs a directory, a `sleep` process and a few lines of sshd_config:
//
// - **SSH:** one sshd serves 16 addresses (OpenSSH's MAX_LISTEN_SOCKS; a 17th ListenAddress
//   makes sshd refuse to start, checked on OpenSSH 9.2), so N computes take ceil(N/16) sshds.
//   Each address has its own `Match LocalAddress` block whose SetEnv points the session at that
//   node's root: the node is picked by the address it was reached on, as a real fleet's is.
//   All of them share one host key; known_hosts has a line per address.
// - **nova-compute:** a `sleep infinity` started by the virtual node's own systemctl (a shell
//   script, not Node: a command costs ~2 ms instead of ~60 ms of CPU), in its own session with
//   SIGHUP ignored, carrying NOVA_LAB_UNIT and NOVA_LAB_ROOT in its environment so that the
//   lab recognises it as the unit's process (units.ts `isUnitProcess`). Its heartbeat is
//   derived: the cloud's service list (openstack.ts) reports it up, updated now, once its
//   process lives and `heartbeatMs` passed since it started.
// - **Command times**, per node, in `<node root>/fleet-times`: install, stop, start and
//   heartbeat each take a settable time, so bench/fleet.ts can compute the ideal wall time.
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeText } from './node/env';
import { nodeLayout, NOVA_UNITS, stateLayout, type NodeConfig } from './node/layout';
import { sshdPid, startSshd, stopSshd, type SshdHandle } from './sshd';

/** Per-node times of the virtual nova-compute's commands, in milliseconds. */
export interface FleetTimes {
  /** `lab-install-code VERSION`. */
  installMs: number;
  /** `systemctl stop`: a graceful nova-compute stop. */
  stopMs: number;
  /** `systemctl start`, until the unit is active (devstack's units are Type=notify). */
  startMs: number;
  /** From the end of the start until the service list shows a fresh heartbeat. */
  heartbeatMs: number;
}

export const DEFAULT_FLEET_TIMES: FleetTimes = { installMs: 500, stopMs: 200, startMs: 200, heartbeatMs: 500 };

/** OpenSSH's MAX_LISTEN_SOCKS: one sshd listens on at most this many addresses. */
export const ADDRESSES_PER_SSHD = 16;
/** Virtual computes per third octet: .1 to .250. */
const PER_OCTET = 250;

export interface VirtualCompute {
  name: string;
  address: string;
}

/** vc1, vc2, … on <a>.<b>.<c+1>.1 onwards, 250 to a /24, never on the lab's own subnet. */
export function virtualComputes(subnet: string, count: number): VirtualCompute[] {
  const [a, b, c] = subnet.split('.').map(Number) as [number, number, number];
  const last = c + 1 + Math.floor(Math.max(0, count - 1) / PER_OCTET);
  if (count > 0 && last > 255)
    throw new Error(
      `${count} virtual computes do not fit after subnet ${subnet}: they take ${a}.${b}.${c + 1}.0 to ${a}.${b}.${last}.0 (at most ${(255 - c) * PER_OCTET}); use a lower third octet, such as ${a}.${b}.0`,
    );
  return Array.from({ length: count }, (_, i) => ({
    name: `vc${i + 1}`,
    address: `${a}.${b}.${c + 1 + Math.floor(i / PER_OCTET)}.${(i % PER_OCTET) + 1}`,
  }));
}

/** vc7 → 6: its place in the fleet, and so its sshd. */
export const virtualIndex = (name: string) => Number(name.slice(2)) - 1;

export const fleetLayout = (stateDir: string) => {
  const dir = join(stateDir, 'fleet');
  return {
    dir,
    /** The virtual nodes' stand-ins: systemctl, lab-install-code, journalctl, sudo. */
    bin: join(dir, 'bin'),
    hostKey: join(dir, 'ssh_host_ed25519_key'),
    sshd: (k: number) => join(dir, `sshd-${k}`),
  };
};

// Shared by the scripts: the unit's state file is the same JSON the Node stand-ins write
// (units.ts UnitFile), so lab status, lab down and the cloud's service list read it unchanged.
const COMMON = `set -u
R=$NOVA_LAB_ROOT
. "$R/fleet-times"
now() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
event() { echo "$* at=$(now)" >> "$R/events.log"; }
version() { cat "$R/code-version"; }
`;

const SYSTEMCTL = `#!/bin/sh
# systemctl for a virtual compute of the scale lab (lab/fleet.ts): its one unit's process is a
# \`sleep infinity\` in its own session, SIGHUP ignored; times come from fleet-times.
${COMMON}
state() { printf '%s' "$R/run/$1.json"; }
field() { sed -n "s/.*\\"$2\\": *\\"\\{0,1\\}\\([^,\\"}]*\\).*/\\1/p" "$(state "$1")" 2>/dev/null; }
# The unit's process: alive, not a zombie, and carrying this node and unit in its environment.
alive() {
  p=$1
  [ "$p" -gt 0 ] 2>/dev/null || return 1
  s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1) || return 1
  case "$s" in Z|X|"") return 1 ;; esac
  [ "$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -c -x -e "NOVA_LAB_UNIT=$2" -e "NOVA_LAB_ROOT=$R")" = 2 ]
}
write_state() { # unit pid monotonic active stoppedAt
  t="$(state "$1").tmp.$$"
  printf '{"pid": %s, "startedMonotonic": "%s", "active": %s, "stoppedAt": "%s"}\\n' "$2" "$3" "$4" "$5" > "$t"
  mv "$t" "$(state "$1")"
}
status_of() { # prints ActiveState SubState MainPID Monotonic
  if [ ! -f "$(state "$1")" ]; then echo "inactive dead 0 0"; return; fi
  p=$(field "$1" pid); m=$(field "$1" startedMonotonic); a=$(field "$1" active)
  if [ "$a" != true ]; then echo "inactive dead 0 $m"
  elif alive "$p" "$1"; then echo "active running $p $m"
  else echo "failed failed 0 $m"; fi
}
known() { case " $UNITS " in *" $1 "*) return 0 ;; esac; return 1; }
notfound() { echo "Failed to $1 $2.service: Unit $2.service not found." >&2; exit 5; }
start() {
  u=$1; via=\${2:-start}
  set -- $(status_of "$u")
  [ "$1" = active ] && return 0
  [ "\${NOVA_LAB_FLEET_NO_DELAY:-}" = 1 ] || sleep "$(secs "$START_MS")"
  NOVA_LAB_UNIT=$u setsid nohup sleep infinity < /dev/null > /dev/null 2>&1 9>&- &
  pid=$!
  mono=$(awk '{ printf "%d", $1 * 1000000 }' /proc/uptime)
  write_state "$u" "$pid" "$mono" true ""
  v=$(version)
  hb_ms=$(( $(date +%s%3N) + HEARTBEAT_MS ))
  printf '{"pid": %s, "unit": "%s", "version": "%s", "at": "%s"}' "$pid" "$u" "$v" "$(date -u -d "@$((hb_ms / 1000)).$(printf %03d $((hb_ms % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ)" > "$R/run/$u.heartbeat"
  event "start $u pid=$pid version=$v via=$via"
}
stop() {
  [ -f "$(state "$1")" ] || return 0
  p=$(field "$1" pid); m=$(field "$1" startedMonotonic)
  write_state "$1" "$p" "$m" false "$(now)"
  alive "$p" "$1" || return 0
  v=$(sed -n 's/.*"version": *"\\([^"]*\\)".*/\\1/p' "$R/run/$1.heartbeat" 2>/dev/null)
  [ "\${NOVA_LAB_FLEET_NO_DELAY:-}" = 1 ] || sleep "$(secs "$STOP_MS")"
  kill -TERM "$p" 2>/dev/null
  while alive "$p" "$1"; do sleep 0.01; done
  write_state "$1" "$p" "$m" false "$(now)"
  event "stop $1 pid=$p version=\${v:-unknown} how=exited via=\${2:-stop}"
}
verb=""; units=""; props=""; sig=TERM
while [ $# -gt 0 ]; do
  case "$1" in
    --property=*) props="$props,\${1#--property=}" ;;
    -p|--property) props="$props,$2"; shift ;;
    --signal=*) sig=\${1#--signal=} ;;
    -s|--signal) sig=$2; shift ;;
    -n|--lines|--kill-whom|--kill-who) shift ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$1; else units="$units \${1%.service}"; fi ;;
  esac
  shift
done
[ -n "$verb" ] || { echo "systemctl: this lab stand-in needs a verb" >&2; exit 1; }
[ -n "$units" ] || { echo "Too few arguments." >&2; exit 1; }
code=0
for u in $units; do
  case "$verb" in
    start|stop|restart|kill) known "$u" || notfound "$verb" "$u" ;;
  esac
  # One systemctl at a time per unit, as systemd queues jobs.
  case "$verb" in
    start|stop|restart) exec 9> "$R/run/$u.lock"; flock 9 ;;
  esac
  case "$verb" in
    start) start "$u" ;;
    stop) stop "$u" ;;
    restart) stop "$u" restart; start "$u" restart ;;
    show)
      set -- $(status_of "$u")
      known "$u" && load=loaded || load=not-found
      for p in MainPID ExecMainStartTimestampMonotonic ActiveState SubState LoadState Id; do
        case ",$props," in ,,|*",$p,"*) ;; *) continue ;; esac
        case $p in
          MainPID) echo "MainPID=$3" ;;
          ExecMainStartTimestampMonotonic) echo "ExecMainStartTimestampMonotonic=$4" ;;
          ActiveState) echo "ActiveState=$1" ;;
          SubState) echo "SubState=$2" ;;
          LoadState) echo "LoadState=$load" ;;
          Id) echo "Id=$u.service" ;;
        esac
      done ;;
    is-active)
      set -- $(status_of "$u"); echo "$1"; [ "$1" = active ] || code=3 ;;
    status)
      set -- $(status_of "$u")
      echo "● $u.service - Devstack $u.service (virtual compute)"
      echo "     Active: $1 ($2)"
      [ "$3" = 0 ] || echo "   Main PID: $3 (sleep)"
      [ "$1" = active ] || code=3 ;;
    kill)
      set -- $(status_of "$u")
      if [ "$3" != 0 ]; then
        sig=\${sig#SIG}
        kill -s "$sig" "$3"
        if [ "$sig" = HUP ]; then
          n=$(( $(cat "$R/run/$u.hups" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$R/run/$u.hups"
          pin=$(awk -F' *= *' '/^\\[/ { s = $0 } s == "[upgrade_levels]" && $1 == "compute" { v = $2 } END { print v == "" ? "none" : v }' "$R/etc/nova/nova-cpu.conf")
          event "hup $u pid=$3 version=$(version) hups=$n upgrade_levels.compute=$pin"
        fi
      fi ;;
    *) echo "Unknown command verb '$verb'." >&2; exit 1 ;;
  esac
done
exit $code
`;

const INSTALL = `#!/bin/sh
# lab-install-code VERSION on a virtual compute: the release switch, after installMs.
${COMMON}
v=""
for a in "$@"; do case "$a" in -*) ;; *) v=$a ;; esac; done
[ -n "$v" ] || { echo "usage: lab-install-code VERSION" >&2; exit 2; }
[ -f "$NOVA_LAB_STATE/fixtures/nova-versions/root-$v.json" ] || { echo "error: pathspec '$v' did not match any file(s) known to git (the lab has no nova $v)" >&2; exit 1; }
before=$(version)
[ "\${NOVA_LAB_FLEET_NO_DELAY:-}" = 1 ] || sleep "$(secs "$INSTALL_MS")"
printf '%s\\n' "$v" > "$R/code-version.tmp.$$" && mv "$R/code-version.tmp.$$" "$R/code-version"
event "install nova from=$before version=$v"
if [ "$before" = "$v" ]; then echo "nova $v is already installed on $NOVA_LAB_NODE"
else echo "Installed nova $v on $NOVA_LAB_NODE (was $before)"; fi
`;

const JOURNALCTL = `#!/bin/sh
echo "-- No entries --"
`;

/** Writes the virtual nodes' stand-ins; sudo is the lab's own (it keeps the environment). */
export function installFleetBin(stateDir: string): void {
  const f = fleetLayout(stateDir);
  mkdirSync(f.bin, { recursive: true });
  const put = (name: string, text: string) => {
    writeFileSync(join(f.bin, name), text);
    chmodSync(join(f.bin, name), 0o755);
  };
  put('systemctl', SYSTEMCTL);
  put('lab-install-code', INSTALL);
  put('journalctl', JOURNALCTL);
  copyFileSync(join(stateLayout(stateDir).bin, 'sudo'), join(f.bin, 'sudo'));
  chmodSync(join(f.bin, 'sudo'), 0o755);
}

export function fleetEnv(stateDir: string, name: string): Record<string, string> {
  const root = stateLayout(stateDir).node(name);
  return {
    PATH: `${fleetLayout(stateDir).bin}:/usr/local/bin:/usr/bin:/bin`,
    HOME: root,
    NOVA_LAB_ROOT: root,
    NOVA_LAB_NODE: name,
    NOVA_LAB_STATE: stateDir,
    LANG: 'C.UTF-8',
  };
}

const timesFile = (t: FleetTimes) =>
  `UNITS="${NOVA_UNITS.compute}"\nINSTALL_MS=${Math.round(t.installMs)}\nSTOP_MS=${Math.round(t.stopMs)}\nSTART_MS=${Math.round(t.startMs)}\nHEARTBEAT_MS=${Math.round(t.heartbeatMs)}\n`;

/** A virtual compute's root: node.json, nova-cpu.conf and the installed release, written once; its times every time. */
export function writeVirtualNode(
  stateDir: string,
  n: VirtualCompute,
  fromVersion: string,
  cpuConf: string,
  times: FleetTimes,
  serviceDownSeconds: number,
): void {
  const root = stateLayout(stateDir).node(n.name);
  const l = nodeLayout(root);
  mkdirSync(l.run, { recursive: true });
  const config: NodeConfig = {
    name: n.name,
    address: n.address,
    apiPort: 0,
    units: [NOVA_UNITS.compute],
    apiMercySeconds: 0,
    serviceDownSeconds,
    virtual: true,
  };
  writeFileSync(l.config, `${JSON.stringify(config)}\n`);
  writeFileSync(join(root, 'fleet-times'), timesFile(times));
  if (!existsSync(l.cpuConf)) writeText(l.cpuConf, cpuConf);
  if (!existsSync(l.codeVersion)) writeFileSync(l.codeVersion, `${fromVersion}\n`);
}

/** Changes one virtual node's command times (a slow node, a straggler) on a running lab. */
export function setFleetTimes(stateDir: string, name: string, times: FleetTimes): void {
  writeFileSync(join(stateLayout(stateDir).node(name), 'fleet-times'), timesFile(times));
}

export const fleetSshdCount = (count: number) => Math.ceil(count / ADDRESSES_PER_SSHD);

/** ceil(N/16) sshds, each on 16 addresses with a Match block per address; running ones are reused. */
export async function startFleetSshds(
  stateDir: string,
  nodes: VirtualCompute[],
  port: number,
  authorizedKeys: string,
): Promise<SshdHandle[]> {
  const f = fleetLayout(stateDir);
  mkdirSync(f.dir, { recursive: true });
  if (!existsSync(f.hostKey)) {
    await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lab-fleet-host', '-f', f.hostKey]);
  }
  const groups = Array.from({ length: fleetSshdCount(nodes.length) }, (_, k) =>
    nodes.slice(k * ADDRESSES_PER_SSHD, (k + 1) * ADDRESSES_PER_SSHD),
  );
  const handles: SshdHandle[] = [];
  // A few at a time: each start runs `sshd -t` and waits for its port.
  for (let i = 0; i < groups.length; i += 8) {
    handles.push(
      ...(await Promise.all(
        groups.slice(i, i + 8).map((group, j) => {
          const k = i + j;
          const dir = f.sshd(k);
          mkdirSync(dir, { recursive: true });
          for (const ext of ['', '.pub']) copyFileSync(`${f.hostKey}${ext}`, join(dir, `ssh_host_ed25519_key${ext}`));
          chmodSync(join(dir, 'ssh_host_ed25519_key'), 0o600);
          const setEnv = (n: VirtualCompute) =>
            Object.entries(fleetEnv(stateDir, n.name))
              .map(([key, v]) => `${key}=${v}`)
              .join(' ');
          return startSshd({
            name: `fleet-${k}`,
            dir,
            address: group[0]!.address,
            port,
            authorizedKeys,
            // 50 computes at once with their detached polls share few connections each.
            maxSessions: 64,
            extraConfig: [
              ...group.slice(1).map((n) => `ListenAddress ${n.address}:${port}`),
              // The global SetEnv is replaced by the matching block's: each address is its node.
              ...group.flatMap((n) => [`Match LocalAddress ${n.address}`, `  SetEnv ${setEnv(n)}`]),
            ],
          });
        }),
      )),
    );
  }
  // Every address, not only each sshd's first, answers once all of them listen.
  return handles.flatMap((h, k) =>
    groups[k]!.map((n) => ({ ...h, name: n.name, address: n.address, knownHostsLine: knownLine(h, n.address) })),
  );
}

function knownLine(h: SshdHandle, address: string): string {
  const [type, key] = h.hostPublicKey.split(/\s+/);
  return `${h.port === 22 ? address : `[${address}]:${h.port}`} ${type} ${key}`;
}

export function stopFleetSshds(stateDir: string, count: number): void {
  for (let k = 0; k < fleetSshdCount(count); k++) stopSshd(fleetLayout(stateDir).sshd(k));
}

export function fleetSshdPids(stateDir: string, count: number): Array<number | undefined> {
  return Array.from({ length: fleetSshdCount(count) }, (_, k) => sshdPid(fleetLayout(stateDir).sshd(k)));
}
