#!/usr/bin/env bash
# Install ngspice + libngspice0 from Debian's packages, preferring a build with KLU.
#
# Debian 12 (bookworm): its main archive has ngspice 39 without KLU; bookworm-backports has
# ngspice 46 built with KLU (a 128x128 crossbar .op in 0.9 s instead of 2 min). A backports
# source is added only when none is configured, built from the mirror URI and components the
# machine's own apt sources already use (so proxies and local mirrors keep working). If
# backports cannot be reached, it falls back to the main archive with a one-line warning.
# Debian 13 and later: the main archive's ngspice; says whether it has KLU.
# Idempotent: a second run with ngspice >= 46 installed does nothing. Run as root.
set -euo pipefail

PACKAGES=(ngspice libngspice0)
BPO_FILE=/etc/apt/sources.list.d/pycosim-backports.sources
export DEBIAN_FRONTEND=noninteractive

say() { echo "install-ngspice: $*"; }
warn() { echo "install-ngspice: WARNING: $*" >&2; }

installed_major() {  # major version of the installed ngspice package, or 0
  local v
  v=$(dpkg-query -W -f='${Version}' ngspice 2>/dev/null || true)
  v=${v#*:}
  [[ -n "$v" ]] && dpkg-query -W -f='${Status}' ngspice libngspice0 2>/dev/null | grep -q 'install ok installed.*install ok installed' \
    && echo "${v%%[!0-9]*}" || echo 0
}

has_klu() {  # does the installed ngspice use KLU when a deck asks for it?
  local d; d=$(mktemp -d)
  printf 'klu probe\nR1 1 0 1k\nV1 1 0 1\n.options klu\n.op\n.end\n' > "$d/p.cir"
  (cd "$d" && ngspice -b p.cir 2>&1) | grep -q 'Using KLU' && rm -rf "$d" && return 0
  rm -rf "$d"; return 1
}

# Sources the machine already uses for the main archive: "URI|components" lines.
main_archive_sources() {
  local codename=$1 f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    awk -v c="$codename" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i+1)==c) { comp=""; for (k=i+2; k<=NF; k++) comp=comp (comp?" ":"") $k; print $i "|" comp } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    # deb822: one stanza per blank-line-separated block
    awk -v c="$codename" 'BEGIN{RS=""; FS="\n"} {
        uris=""; suites=""; comps=""; types=""; enabled="yes"
        for (i=1; i<=NF; i++) { line=$i; sub(/^[ \t]+/, "", line)
          if (line ~ /^#/) continue
          if (tolower(line) ~ /^types:/) { sub(/^[^:]*:[ \t]*/, "", line); types=line }
          else if (tolower(line) ~ /^uris:/) { sub(/^[^:]*:[ \t]*/, "", line); uris=line }
          else if (tolower(line) ~ /^suites:/) { sub(/^[^:]*:[ \t]*/, "", line); suites=line }
          else if (tolower(line) ~ /^components:/) { sub(/^[^:]*:[ \t]*/, "", line); comps=line }
          else if (tolower(line) ~ /^enabled:/) { sub(/^[^:]*:[ \t]*/, "", line); enabled=tolower(line) } }
        if (enabled == "no" || types !~ /(^| )deb( |$)/) next
        n=split(suites, s, /[ \t]+/); ok=0; for (k=1; k<=n; k++) if (s[k]==c) ok=1
        if (ok) { m=split(uris, u, /[ \t]+/); for (k=1; k<=m; k++) print u[k] "|" comps } }' "$f"
  done
}

backports_configured() {
  local codename=$1
  grep -rqsE "^[^#]*\b${codename}-backports\b" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}

add_backports_source() {
  local codename=$1 line uri comps first=1
  line=$(main_archive_sources "$codename" | head -n1)
  if [[ -z "$line" ]]; then
    warn "no apt source for '$codename' found to derive a ${codename}-backports mirror from"
    return 1
  fi
  uri=${line%%|*}; comps=${line#*|}
  [[ -n "$comps" ]] || comps=main
  say "adding ${codename}-backports from $uri ($comps) as $BPO_FILE"
  cat > "$BPO_FILE" <<SRC
# Added by pycosim's tools/install-ngspice.sh: ngspice 46 with KLU comes from here.
Types: deb
URIs: $uri
Suites: ${codename}-backports
Components: $comps
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
}

install_main() {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
}

if ! command -v apt-get >/dev/null 2>&1; then
  if command -v ngspice >/dev/null 2>&1; then say "no apt-get; using the ngspice on PATH"; exit 0; fi
  echo "install-ngspice: not a Debian machine and no ngspice on PATH: install ngspice and libngspice (>= 39, 46 with KLU preferred)" >&2
  exit 1
fi

# shellcheck disable=SC1091
. /etc/os-release
codename=${VERSION_CODENAME:-}
major=$(installed_major)

if [[ "$codename" == "bookworm" ]]; then
  if (( major >= 46 )); then exit 0; fi
  added=0
  if ! backports_configured bookworm; then
    add_backports_source bookworm && added=1 || true
  fi
  if apt-get update -qq 2>/tmp/pycosim-apt-update.err && \
     [[ "$(apt-cache policy ngspice)" == *bookworm-backports* ]] && \
     apt-get install -y -qq --no-install-recommends -t bookworm-backports "${PACKAGES[@]}"; then
    say "ngspice $(dpkg-query -W -f='${Version}' ngspice) from bookworm-backports"
  else
    (( added )) && rm -f "$BPO_FILE"
    warn "bookworm-backports unreachable: installing ngspice 39 from the main archive (no KLU: large arrays are much slower)"
    install_main
  fi
else
  if (( major > 0 )) && command -v ngspice >/dev/null 2>&1 && ldconfig -p | grep -q 'libngspice\.so\.0'; then exit 0; fi
  install_main
  if has_klu; then say "ngspice $(dpkg-query -W -f='${Version}' ngspice) from the main archive, with KLU"
  else warn "ngspice $(dpkg-query -W -f='${Version}' ngspice) from the main archive has no KLU (large arrays are slower)"; fi
fi
