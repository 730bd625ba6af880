#!/usr/bin/env bash
# Ansible for bench/vs-ansible only: a venv cached under ~/.cache/nova-upgrade/ansible/<version>,
# built once (a second run is a no-op: the .complete marker) and never by install.sh or the tests.
# Prints the venv's bin directory on stdout.
set -euo pipefail
VERSION="${ANSIBLE_CORE_VERSION:-2.19.14}"
DIR="${HOME}/.cache/nova-upgrade/ansible/${VERSION}"
if [[ ! -f "${DIR}/.complete" ]]; then
  # venv scripts carry their own path in the shebang: built where it stays, marked when done.
  rm -rf "${DIR}"
  python3 -m venv "${DIR}" >&2
  "${DIR}/bin/pip" install --quiet --disable-pip-version-check "ansible-core==${VERSION}" >&2
  touch "${DIR}/.complete"
fi
echo "${DIR}/bin"
