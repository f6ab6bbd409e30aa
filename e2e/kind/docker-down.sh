#!/usr/bin/env bash
# docker-down.sh — stops the dockerd that docker-up.sh started (by the PID it recorded, never by
# name) and undoes its iptables changes. Does nothing to a Docker engine it did not start.
source "$(dirname "$0")/lib.sh"

state="$IRONLB_CACHE/docker"
marker="$state/started-by-ironlb"
if [ ! -s "$marker" ]; then
  log "docker: not started by ironlb, leaving it alone"
  exit 0
fi
pid=$(cat "$marker")
bridges=""
# The PID must still be a dockerd run with our config, or it was reused by something else.
if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--config-file $state/daemon.json"; then
  # dockerd leaves the bridges of its user-defined networks (kind's) behind: note them now.
  bridges=$(docker network ls -q --filter driver=bridge 2>/dev/null | cut -c1-12 | sed 's/^/br-/' || true)
  log "docker: stopping dockerd pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "docker: dockerd pid $pid still running after 30s, sending SIGKILL"
    kill -KILL "$pid"
  fi
else
  log "docker: dockerd pid $pid is gone"
fi
rm -f "$marker"

# Undo dockerd's iptables changes: rules that jump to DOCKER* chains or name Docker bridges,
# then the chains themselves, only if they did not exist before we started dockerd.
if [ "$(cat "$state/docker-chains.before" 2>/dev/null)" = no ]; then
  for table in filter nat; do
    iptables -t "$table" -S 2>/dev/null |
      grep -E '^-A ' | grep -E -- '-j DOCKER|docker0|br-[0-9a-f]{12}' | grep -v -- '^-A DOCKER' |
      while read -r rule; do
        # shellcheck disable=SC2086
        iptables -t "$table" ${rule/-A/-D} 2>/dev/null || true
      done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^DOCKER/ {print $2}'); do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^DOCKER/ {print $2}'); do
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  log "docker: removed DOCKER iptables chains"
fi
policy=$(cat "$state/forward-policy.before" 2>/dev/null || true)
iptables -P FORWARD "${policy:-ACCEPT}"
if [ "$(cat "$state/docker0.before" 2>/dev/null)" = no ] && ip link show docker0 >/dev/null 2>&1; then
  ip link del docker0 || true
fi
for br in ${bridges:-}; do
  if ip link show "$br" >/dev/null 2>&1; then ip link del "$br" || true; fi
done
log "docker: stopped; iptables FORWARD policy ${policy:-ACCEPT}"
