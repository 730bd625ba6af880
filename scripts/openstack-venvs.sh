#!/usr/bin/env bash
# Builds the real OpenStack programs the real-nova lab runs, each in its own versioned Python
# venv under ~/.cache/nova-upgrade/venvs/<name>-<version>, once. A venv counts as built only
# when its stamp matches what this script would install into it; an interrupted build is
# redone from scratch. Prints nothing on stdout; progress and timings go to stderr.
#
#   bash scripts/openstack-venvs.sh [--pair FROM-TO] [--list]
#
# --pair picks the nova release pair (default 33-34; 31-33 is the skip-level pair); the shared
# programs (keystone, tempest, openstackclient) are always built. --list prints the venv paths
# the pair needs, one per line, and builds nothing.
#
# Measured on this 2-core machine (python3.11 from Debian 12, pip's wheel cache empty): see
# the report in docs/real-lab.md; a warm run (every stamp matching) takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${NOVA_UPGRADE_CACHE:-$HOME/.cache/nova-upgrade}"
VENVS="$CACHE/venvs"
# Debian 12's own interpreter: uwsgi-plugin-python3 is built against it, so keystone and
# placement can run from these venvs inside Debian's uwsgi (--plugin python3 --virtualenv).
PYTHON="${NOVA_UPGRADE_PYTHON:-/usr/bin/python3.11}"
# The lock files pin every dependency as first resolved, so a later build gets the same code.
LOCKS="lab/venvs"

# name version pip-requirements... for each release of a pair.
# PyMySQL: every service reaches MariaDB through mysql+pymysql://. python-memcached is not
# needed: the lab runs no memcached and keystonemiddleware falls back to its in-process cache.
nova_spec() { echo "nova $1 nova==$1 PyMySQL"; }
# Extra pins where a release's own requirements admit a library that later broke it (the lab
# cannot read the releases' upper-constraints): placement 13.0.1 and 15.0.0 read
# [oslo_policy] enforce_scope (placement/deploy.py), which oslo.policy 6 removed
# ("NoSuchOptError: no such option enforce_scope in group [oslo_policy]" at start).
placement_spec() {
  case "$1" in
    13.0.1 | 15.0.0) echo "placement $1 openstack-placement==$1 PyMySQL oslo.policy<6" ;;
    *) echo "placement $1 openstack-placement==$1 PyMySQL" ;;
  esac
}
SHARED_SPECS=(
  "keystone 30.0.0 keystone==30.0.0 PyMySQL"
  "tempest 47.0.0 tempest==47.0.0"
  "openstackclient 10.5.0 python-openstackclient==10.5.0"
)

pair="33-34"
list=0
while (($#)); do
  case "$1" in
    --pair) pair="${2:?--pair needs FROM-TO, e.g. 33-34}"; shift 2 ;;
    --pair=*) pair="${1#--pair=}"; shift ;;
    --list) list=1; shift ;;
    *) echo "openstack-venvs: unknown argument $1 (use --pair FROM-TO, --list)" >&2; exit 2 ;;
  esac
done

# nova release → (nova version, placement version) it is paired with in the lab.
release_specs() {
  case "$1" in
    31) nova_spec 31.3.1; placement_spec 13.0.1 ;;
    33) nova_spec 33.0.2; placement_spec 15.0.0 ;;
    34) nova_spec 34.0.0; placement_spec 16.0.0 ;;
    *) echo "openstack-venvs: no venvs are defined for nova release $1 (known: 31, 33, 34)" >&2; return 2 ;;
  esac
}

from="${pair%-*}"
to="${pair#*-}"
if [[ "$pair" != *-* || -z "$from" || -z "$to" ]]; then
  echo "openstack-venvs: --pair must be FROM-TO, such as 33-34 (got \"$pair\")" >&2
  exit 2
fi
specs=()
while read -r line; do specs+=("$line"); done < <(release_specs "$from"; release_specs "$to")
specs+=("${SHARED_SPECS[@]}")

if ((list)); then
  for s in "${specs[@]}"; do read -r name version _ <<<"$s"; echo "$VENVS/$name-$version"; done
  exit 0
fi

if [[ ! -x "$PYTHON" ]]; then
  echo "openstack-venvs: $PYTHON not found (apt-get install python3 python3-venv python3-dev)" >&2
  exit 1
fi

build() {
  local name="$1" version="$2"
  shift 2
  local dir="$VENVS/$name-$version" lock="$LOCKS/$name-$version.txt"
  local want
  want="$( (echo "$PYTHON $*"; [[ -f "$lock" ]] && cat "$lock") | sha256sum | cut -d' ' -f1)"
  if [[ -f "$dir/.nova-upgrade-stamp" && "$(cat "$dir/.nova-upgrade-stamp")" == "$want" ]]; then
    echo "openstack-venvs: $name $version ready ($dir)" >&2
    return 0
  fi
  echo "openstack-venvs: building $name $version into $dir" >&2
  local start=$SECONDS
  rm -rf "$dir"
  mkdir -p "$VENVS"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip setuptools wheel >&2
  local constraint=()
  [[ -f "$lock" ]] && constraint=(-c "$lock")
  if ! "$dir/bin/pip" install --quiet --disable-pip-version-check "${constraint[@]}" "$@" >&2; then
    rm -rf "$dir"
    echo "openstack-venvs: could not install $* for $name $version (see pip's error above)" >&2
    return 1
  fi
  # Record the first resolution so every later build installs exactly these versions.
  if [[ ! -f "$lock" ]]; then
    mkdir -p "$LOCKS"
    "$dir/bin/pip" freeze --disable-pip-version-check --exclude-editable | grep -v '^pkg_resources' >"$lock"
    want="$( (echo "$PYTHON $*"; cat "$lock") | sha256sum | cut -d' ' -f1)"
  fi
  echo "$want" >"$dir/.nova-upgrade-stamp"
  echo "openstack-venvs: built $name $version in $((SECONDS - start))s" >&2
}

total=$SECONDS
failed=()
for s in "${specs[@]}"; do
  read -r -a parts <<<"$s"
  build "${parts[@]}" || failed+=("${parts[0]} ${parts[1]}")
done
if ((${#failed[@]})); then
  echo "openstack-venvs: failed: ${failed[*]}" >&2
  exit 1
fi
echo "openstack-venvs: all venvs for the pair $pair ready in $((SECONDS - total))s" >&2
