# Shared by scripts/demo and scripts/test: system packages (as root) and the virtualenv.
# shellcheck shell=bash

apt_install() {
  # apt_install PACKAGE... : install the Debian packages that are missing, when root
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # fail2ban is installed for its sample logs only: keep its service from starting
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

make_venv() {
  # make_venv EXTRAS : .venv with gardien installed (editable) with these extras. pip runs only
  # when pyproject.toml or the version (src/gardien/_version.py, which the installed metadata
  # copies) changed since, or for extras not installed yet (.venv/.installed lists those): the
  # code itself is editable, so a second ./scripts/run starts at once, offline too.
  local python=${PYTHON:-python3} stamp=.venv/.installed
  if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt src/gardien/_version.py ] \
    || rm -f "$stamp"
  # any install has the core dependencies; extras must have been installed as asked
  if [ -f "$stamp" ] && { [ -z "$1" ] || grep -qxF -- "gardien$1" "$stamp"; }; then
    byte_compile
    return 0
  fi
  local pip=(.venv/bin/python -m pip install -q --disable-pip-version-check -e ".$1")
  # cysystemd (the journal reader) has wheels for x86_64 and aarch64 only; elsewhere pip
  # compiles it against libsystemd
  if ! "${pip[@]}" --only-binary cysystemd 2>/dev/null; then
    apt_install gcc libsystemd-dev python3-dev
    "${pip[@]}"
  fi
  echo "gardien$1" >> "$stamp"
  byte_compile
}

byte_compile() {
  # byte_compile : gardien's modules compiled, as an installed package has them (the Debian
  # package compiles them at build time). pip does not compile an editable install's sources,
  # and with PYTHONDONTWRITEBYTECODE set Python would compile them again at every start (a
  # tenth of a second of `gardien regex`). Only the changed files are compiled again.
  .venv/bin/python -m compileall -q -j0 src/gardien >/dev/null
}

make_native() {
  # make_native : the optional native matching core (native/, Rust) into .venv, built again
  # when its sources changed. Without a Rust toolchain gardien runs on its pure-Python engine;
  # under CI the core is required (its tests compare it with the Python engine).
  local stamp=.venv/.native
  export PATH="$HOME/.cargo/bin:$PATH"
  if [ -f "$stamp" ] && [ -z "$(find native/Cargo.toml native/Cargo.lock native/pyproject.toml \
      native/src -newer "$stamp" 2>/dev/null)" ]; then
    return 0
  fi
  if ! command -v cargo >/dev/null; then
    if [ -n "${CI:-}" ]; then
      echo "the native core needs a Rust toolchain (cargo), which CI must have" >&2
      return 1
    fi
    echo "no Rust toolchain: the native core is not built (the Python engine does everything)" >&2
    return 0
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check ./native
  touch "$stamp"
}
