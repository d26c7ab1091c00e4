#!/usr/bin/env bash
# Install the pinned Debian packages listed in apt.txt that are missing.
# Runs apt-get only when something is missing, so repeated `make` calls are quick.
set -euo pipefail
list=${1:-apt.txt}
missing=()
while read -r spec; do
  [[ -z "$spec" || "$spec" == \#* ]] && continue
  name=${spec%%=*}; version=${spec#*=}
  have=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)
  [[ "$have" == "$version" ]] || missing+=("$spec")
done < "$list"
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
