#!/usr/bin/env bash
# docker-up.sh — makes a Docker engine available. Uses the running one if `docker info` works;
# otherwise installs Debian's docker.io if needed and starts a dockerd of our own: its config,
# data-root, exec-root, pidfile and log live under $IRONLB_CACHE/docker, and its default OCI
# runtime is docker/runc-wrapper (see there why). Idempotent; docker-down.sh stops only a dockerd
# this script started.
source "$(dirname "$0")/lib.sh"

state="$IRONLB_CACHE/docker"
pidfile="$state/dockerd.pid"

if docker info >/dev/null 2>&1; then
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "docker: our dockerd (pid $(cat "$pidfile")) is running"
  else
    log "docker: using the running Docker engine"
  fi
  exit 0
fi

[ "$(id -u)" = 0 ] || die "no usable Docker engine and not root: start Docker yourself"
ensure_apt docker.io jq iptables
mkdir -p "$state/data" "$state/exec"
install -m 0755 "$E2E_KIND_DIR/docker/runc-wrapper" "$state/runc-wrapper"
cat >"$state/daemon.json" <<JSON
{
  "data-root": "$state/data",
  "exec-root": "$state/exec",
  "pidfile": "$pidfile",
  "hosts": ["unix:///var/run/docker.sock"],
  "storage-driver": "overlay2",
  "runtimes": {"ironlb-runc": {"path": "$state/runc-wrapper"}},
  "default-runtime": "ironlb-runc",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
JSON

# Remember what dockerd is about to change so docker-down.sh can put it back.
iptables -S FORWARD 2>/dev/null | awk '$1=="-P" {print $3}' >"$state/forward-policy.before" || true
if iptables -S DOCKER >/dev/null 2>&1; then echo yes; else echo no; fi >"$state/docker-chains.before"
if ip link show docker0 >/dev/null 2>&1; then echo yes; else echo no; fi >"$state/docker0.before"

log "docker: starting dockerd (config $state/daemon.json, log $state/dockerd.log)"
rm -f "$pidfile"
setsid nohup dockerd --config-file "$state/daemon.json" >>"$state/dockerd.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$state/started-by-ironlb"
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || die "dockerd exited; last lines of $state/dockerd.log:
$(tail -n 20 "$state/dockerd.log")"
  sleep 1
done
docker info >/dev/null 2>&1 || die "dockerd not ready after 60s, see $state/dockerd.log"

# dockerd sets the FORWARD policy to DROP, which silently breaks bridged traffic of the
# namespace-based tests (bridge-nf-call-iptables). Docker's own networks do not need DROP: its
# DOCKER-ISOLATION chains still separate them.
policy=$(cat "$state/forward-policy.before")
if [ "${policy:-ACCEPT}" = ACCEPT ]; then
  iptables -P FORWARD ACCEPT
fi
log "docker: dockerd pid $pid ready ($(docker version -f '{{.Server.Version}}')), iptables FORWARD policy ${policy:-ACCEPT}"
