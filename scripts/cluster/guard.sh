#!/usr/bin/env bash
# The network guard: proof that the test cluster and the tests send nothing off this machine.
#
# Tests, benchmarks and the local cluster may talk to 127.0.0.0/8 and to the network namespaces and
# bridge the cluster scripts create, nothing else. The guard is an nftables table of its own
# (`inet chefgenius_guard`) whose rules count, and reject, the first packet of every connection that
# would break that rule (so a leak fails fast in the test that caused it, and is counted):
#   * OUTPUT through the external interface (the default route's) to a private, shared, reserved or
#     documentation range (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16, 192.0.0/24, the TEST-NETs,
#     198.18/15, 240/4, 0/8; fc00::/7, 2001:db8::/32): where made-up pod IPs, service IPs and stray
#     endpoints would go. Exempt: the nameservers of /etc/resolv.conf, which the machine itself uses,
#     and the addresses the package registries resolve to when the guard starts (on some machines
#     they sit in such a range), since a cold `make cluster` still downloads Go modules and kubectl.
#   * OUTPUT to any address of the external interface itself (it is the machine's, not the cluster's).
#   * FORWARD through the external interface, whatever the destination: once pods exist and
#     ip_forward is on, nothing of a pod's may leave through the default route.
# Public addresses are not counted: package registries are reached before tests start, and this
# machine's own tooling uses them.
#
#   guard.sh start        add the table (a no-op if it is there) and print what it watches
#   guard.sh on           exit 0 if the table is there (someone started the guard)
#   guard.sh check        print the counters; exit 1 if any packet was counted
#   guard.sh stop         remove the table
#   guard.sh run CMD...   start; CMD; check; stop. Exit status: CMD's, or 1 if the guard counted
#
# It needs root and nft (Debian's nftables; scripts/install-tools.sh installs it). Without them the
# guard says so and is off, except under CI=true, where that is an error: CI must prove the rule.
set -euo pipefail
TABLE=chefgenius_guard
say() { echo ">> network guard: $*" >&2; }

available() {
  if [ "$(id -u)" -eq 0 ] && command -v nft >/dev/null && nft list tables >/dev/null 2>&1; then
    return 0
  fi
  if [ "${CI:-}" = true ]; then
    say "cannot run (needs root and nft: apt-get install nftables); CI must run with the guard on" && exit 1
  fi
  say "off (needs root and nft); nothing checks this run's traffic"
  return 1
}

external_interface() { ip -o route show default 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="dev") {print $(i+1); exit}}'; }
nameservers() { awk '$1=="nameserver" {print $2}' /etc/resolv.conf 2>/dev/null; }
# The registries the project installs from (Makefile, install-tools.sh, build.sh): PyPI, Debian, npm,
# the Go module proxy and checksum database (GUARD_REGISTRY_HOSTS replaces the list). GUARD_EXTRA_ALLOWED
# adds addresses (a local mirror).
REGISTRY_HOSTS=${GUARD_REGISTRY_HOSTS-"pypi.org files.pythonhosted.org deb.debian.org security.debian.org registry.npmjs.org \
proxy.golang.org sum.golang.org"}
registry_addresses() {
  local host
  for host in $REGISTRY_HOSTS; do getent ahosts "$host" 2>/dev/null | awk '{print $1}'; done | sort -u
  for host in ${GUARD_EXTRA_ALLOWED:-}; do echo "$host"; done
}
# set_of FAMILY WORDS...: "{a, b}" of the words of that family (4: dotted, 6: with a colon)
set_of() {
  local family=$1 out=() word
  shift
  for word in "$@"; do
    if [ "$family" = 4 ] && [[ $word != *:* ]]; then out+=("$word"); fi
    if [ "$family" = 6 ] && [[ $word == *:* ]]; then out+=("$word"); fi
  done
  local IFS=,
  [ ${#out[@]} -gt 0 ] && echo "{${out[*]}}"
  return 0
}

PRIVATE4="0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 169.254.0.0/16, 172.16.0.0/12, 192.0.0.0/24, 192.0.2.0/24, \
192.168.0.0/16, 198.18.0.0/15, 198.51.100.0/24, 203.0.113.0/24, 240.0.0.0/4"
PRIVATE6="fc00::/7, 2001:db8::/32"
# Each counted packet is also logged (rate-limited) to the kernel log, so `check` can say where it went.
LOG_PREFIX="chefgenius-guard: "
# rule MATCH VERDICT: two rules, one that logs (a limit that is hit must not skip the count) and
# one that counts and rejects or drops.
rule() {
  printf '    %s limit rate 10/second log prefix "%s"\n    %s %s\n' "$1" "$LOG_PREFIX" "$1" "$2"
}

start() {
  available || return 0
  if nft list table inet "$TABLE" >/dev/null 2>&1; then
    say "already on (counting since it started)"
    return 0
  fi
  local ext own dns4 dns6 rules
  ext=$(external_interface)
  mapfile -t own < <(ip -o addr show dev "${ext:-lo}" 2>/dev/null | awk '$3 ~ /^inet/ {split($4, a, "/"); print a[1]}' | grep -v '^fe80:' || true)
  mapfile -t dns < <(nameservers)
  mapfile -t registries < <(registry_addresses)
  dns4=$(set_of 4 "${dns[@]}" "${registries[@]}") dns6=$(set_of 6 "${dns[@]}" "${registries[@]}")
  local own4 own6
  own4=$(set_of 4 "${own[@]}") own6=$(set_of 6 "${own[@]}")
  rules="table inet $TABLE {
  counter leaked {}
  counter external_address {}
  counter forwarded {}
  chain output {
    type filter hook output priority 0; policy accept;
"
  if [ -n "$ext" ]; then
    rules+=$(rule "oifname \"$ext\" ip daddr { $PRIVATE4 } ${dns4:+ip daddr != $dns4} ct state new" "counter name leaked reject")
    rules+=$'\n'$(rule "oifname \"$ext\" ip6 daddr { $PRIVATE6 } ${dns6:+ip6 daddr != $dns6} ct state new" "counter name leaked reject")
  fi
  [ -z "$own4" ] || rules+=$'\n'$(rule "ip daddr $own4 ct state new" "counter name external_address reject")
  [ -z "$own6" ] || rules+=$'\n'$(rule "ip6 daddr $own6 ct state new" "counter name external_address reject")
  rules+="
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
"
  [ -z "$ext" ] || rules+=$(rule "oifname \"$ext\"" "counter name forwarded drop")
  rules+="
  }
}"
  nft -f - <<<"$rules"
  say "on: nftables table inet $TABLE counts and rejects"
  say "  output via ${ext:-<no default route>} to private/reserved ranges; exempt: nameservers ${dns[*]:-none}, registries ${registries[*]:-none}"
  say "  output to this machine's external addresses: ${own[*]:-none}"
  say "  anything forwarded out of ${ext:-<none>}"
  say "  routes now: $(ip -o route show | tr '\n' ';' | sed 's/;$//')"
}

# counts: "name packets" lines of the three counters
counts() { nft list counters table inet "$TABLE" 2>/dev/null | awk '/counter/ {name=$2} /packets/ {print name, $2}'; }

check() {
  available || return 0
  nft list table inet "$TABLE" >/dev/null 2>&1 || { say "not on: nothing to check" && return 1; }
  local total=0 name packets
  while read -r name packets; do
    total=$((total + packets))
    [ "$packets" -eq 0 ] || say "COUNTED $packets packet(s) on '$name'"
  done < <(counts)
  if [ "$total" -gt 0 ]; then
    say "FAILED: traffic left for addresses outside 127.0.0.0/8 and the cluster's own networks"
    say "the packets, from the kernel log (source, destination, protocol, ports):"
    { dmesg 2>/dev/null || true; } | grep -F "$LOG_PREFIX" | tail -n 20 |
      awk '{line=""; for (i=1;i<=NF;i++) if ($i ~ /^(SRC|DST|PROTO|SPT|DPT)=/) line=line" "$i; print " "line}' >&2
    nft list table inet "$TABLE" >&2
    return 1
  fi
  say "0 packets counted: nothing left this machine"
}

stop() {
  available || return 0
  nft delete table inet "$TABLE" 2>/dev/null || true
}

command=${1:-}
case $command in
  start) start ;;
  on) command -v nft >/dev/null && nft list table inet "$TABLE" >/dev/null 2>&1 ;;
  check) check ;;
  stop) stop ;;
  run)
    shift
    [ $# -gt 0 ] || { echo "usage: guard.sh run COMMAND [ARGS...]" >&2; exit 2; }
    start
    trap stop EXIT
    trap 'exit 130' INT  # so that a Ctrl-C or a CI timeout still removes the table (EXIT trap)
    trap 'exit 143' TERM
    status=0
    "$@" || status=$?
    check || { [ $status -ne 0 ] || status=1; }
    exit $status
    ;;
  *) echo "usage: guard.sh start | check | stop | run COMMAND [ARGS...]" >&2; exit 2 ;;
esac
