#!/usr/bin/env bash
# demo.sh (`make demo`) — the acceptance walkthrough of DESIGN §1 on a kind cluster, each command
# printed before it runs: cluster (cluster-up.sh), namespace, memberlist Secret, ironlb, the
# address pool derived from the `kind` Docker network, the `app` Deployment and its LoadBalancer
# Service, then 20 requests through the Service's EXTERNAL-IP from a client container on the
# `kind` network, with a count of answers per node. Safe to run again on the same cluster.
#
# If the LoadBalancer IP does not answer within LB_WAIT seconds (default 30) — the speaker is not
# announcing it — the demo says so loudly and reaches the app through its NodePort instead, so
# the rest of the walkthrough can still be checked. It exits non-zero in that case unless
# DEMO_ALLOW_NODEPORT=1.
source "$(dirname "$0")/lib.sh"
LB_WAIT="${LB_WAIT:-30}"
REQUESTS="${REQUESTS:-20}"

banner() { printf '\n==== %s\n' "$*"; }

"$E2E_KIND_DIR/cluster-up.sh" >/dev/null
have_image "$IRONLB_IMAGE" || die "no $IRONLB_IMAGE image: ./cmd/ironlb must build (see e2e/kind/images.sh)"
client=$(resolve_client_image)
cd "$REPO_ROOT"

banner "1. The cluster: one control plane and three workers on the Docker network 'kind'"
run_shown kubectl get nodes -o wide

banner "2. Namespace metallb-system"
reinstall=0
kubectl get namespace metallb-system >/dev/null 2>&1 && reinstall=1
run_shown kubectl apply -f manifests/namespace.yaml

banner "3. The memberlist secret the speakers encrypt their gossip with"
if kubectl -n metallb-system get secret memberlist >/dev/null 2>&1; then
  echo "(secret metallb-system/memberlist exists: keeping it)"
else
  # shellcheck disable=SC2016 # printed as typed
  printf '+ %s\n' 'kubectl create secret generic -n metallb-system memberlist --from-literal=secretkey="$(openssl rand -base64 128)"'
  kubectl create secret generic -n metallb-system memberlist --from-literal=secretkey="$(openssl rand -base64 128)"
fi

banner "4. ironlb: RBAC, the speaker DaemonSet, the controller Deployment"
run_shown kubectl apply -f manifests/ironlb.yaml
if [ "$reinstall" = 1 ]; then
  # The image tag stays :dev; restarting picks up the image images.sh just loaded.
  run_shown kubectl -n metallb-system rollout restart daemonset/speaker deployment/controller
fi
run_shown kubectl -n metallb-system rollout status daemonset/speaker --timeout=120s ||
  echo "!! the speaker pods are not ready (see: kubectl -n metallb-system logs ds/speaker)"
run_shown kubectl -n metallb-system rollout status deployment/controller --timeout=120s ||
  echo "!! the controller pods are not ready (see: kubectl -n metallb-system logs deploy/controller)"

banner "5. The address pool: the top of the kind network's IPv4 subnet"
printf '+ %s\n' "docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'"
subnets=$(docker network inspect "$KIND_NETWORK" -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}')
echo "$subnets"
subnet4=$(tr ' ' '\n' <<<"$subnets" | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/' | head -n1)
[ -n "$subnet4" ] || die "the kind network has no IPv4 subnet: $subnets"
prefix=$(cut -d. -f1-2 <<<"$subnet4")
pool="$prefix.255.200-$prefix.255.250"
pool_yaml="apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - $pool"
printf '+ kubectl apply -f - <<EOF\n%s\nEOF\n' "$pool_yaml"
kubectl apply -f - <<<"$pool_yaml"

banner "6. The app: 10 replicas answering /host with their node and pod IP, behind a LoadBalancer Service"
run_shown kubectl apply -f e2e/kind/manifests/app.yaml
run_shown kubectl scale deployment app --replicas=10
run_shown kubectl rollout status deployment/app --timeout=180s
run_shown kubectl get pods -l app=app -o wide

banner "7. The Service gets an EXTERNAL-IP from the pool"
ip=""
for _ in $(seq 1 60); do
  ip=$(kubectl get svc loadbalancer-service -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true)
  [ -n "$ip" ] && break
  sleep 1
done
run_shown kubectl get svc

# curl_loop TARGET... fetches /host REQUESTS times from a client container on the kind network,
# cycling through the TARGETs (host or host:port), one answer per line.
curl_loop() {
  local targets="$*"
  # shellcheck disable=SC2016 # printed as typed
  printf '+ docker run --rm --network kind %s sh -c '\''for i in $(seq %s); do curl -s --max-time 2 http://<target>/host; done'\''\n' "$client" "$REQUESTS"
  docker run --rm --label ironlb.e2e=true --network "$KIND_NETWORK" "$client" sh -c "
    set -- $targets; n=0
    for i in \$(seq $REQUESTS); do
      t=\$(eval echo \\\${\$(( n % \$# + 1 ))}); n=\$((n + 1))
      curl -s --max-time 2 http://\$t/host || echo \"(no answer from \$t)\"
    done"
}

lb_ok=0
if [ -n "$ip" ]; then
  banner "8. $REQUESTS requests to http://$ip/host from a client container on the kind network ($client)"
  echo "(waiting up to ${LB_WAIT}s for $ip to answer)"
  if docker run --rm --label ironlb.e2e=true --network "$KIND_NETWORK" "$client" sh -c \
    "end=\$((\$(date +%s) + $LB_WAIT)); until curl -s --max-time 2 -o /dev/null http://$ip/host; do [ \$(date +%s) -ge \$end ] && exit 1; sleep 1; done"; then
    lb_ok=1
  fi
fi

if [ "$lb_ok" = 1 ]; then
  answers=$(curl_loop "$ip")
else
  echo
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  if [ -z "$ip" ]; then
    echo "!! loadbalancer-service got no EXTERNAL-IP: the ironlb controller did not assign one."
  else
    echo "!! $ip does not answer after ${LB_WAIT}s: no speaker announces it (ARP)."
  fi
  echo "!! FALLBACK: reaching the app through its NodePort on the node IPs instead."
  echo "!! This checks the cluster and the app, NOT ironlb's data path."
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  nodeport=$(kubectl get svc loadbalancer-service -o jsonpath='{.spec.ports[0].nodePort}')
  targets=$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' |
    grep -v : | sed "s/\$/:$nodeport/" | tr '\n' ' ')
  banner "8. $REQUESTS requests to the NodePort ($targets) from a client container on the kind network ($client)"
  # shellcheck disable=SC2086 # one argument per target
  answers=$(curl_loop $targets)
fi
echo "$answers"

banner "Answers per node"
grep -o 'NODE: [^,]*' <<<"$answers" | sort | uniq -c | sed 's/NODE: //'
nodes_seen=$(grep -o 'NODE: [^,]*' <<<"$answers" | sort -u | wc -l)
got=$(grep -c '^NODE: ' <<<"$answers" || true)
echo "$got/$REQUESTS answered, from $nodes_seen node(s)"

cat <<EOF

==== Poke at it
  export KUBECONFIG=$KUBECONFIG
  kubectl -n metallb-system get pods -o wide
  kubectl -n metallb-system logs ds/speaker        # or deploy/controller
  kubectl describe svc loadbalancer-service         # events: who announces ${ip:-the IP}
  docker run --rm -it --network kind $client         # then: curl ${ip:-<EXTERNAL-IP>}/host
  make demo-down                                    # deletes the cluster, stops the Docker engine we started
EOF

[ "$got" -gt 0 ] || die "no answers"
if [ "$lb_ok" != 1 ]; then
  if [ "${DEMO_ALLOW_NODEPORT:-}" = 1 ]; then
    log "demo finished through the NodePort fallback (DEMO_ALLOW_NODEPORT=1)"
    exit 0
  fi
  die "the LoadBalancer IP did not answer (NodePort fallback shown above)"
fi
[ "$nodes_seen" -ge 2 ] || die "all answers came from one node"
log "demo OK: $got/$REQUESTS answers through $ip from $nodes_seen nodes"
