#!/usr/bin/env bash
# testenv.sh — the real servers Strata's tests and demo run against, all on 127.0.0.1.
#
#   scripts/testenv.sh up     install what is missing, start everything, print export lines
#   scripts/testenv.sh env    print the export lines of a running environment
#   scripts/testenv.sh status say what runs
#   scripts/testenv.sh down   stop only the processes this script started (by PID)
#
# Servers: dockerd (own socket, no bridge, no iptables), a registry (distribution 2.8, delete
# enabled), etcd and a kube-apiserver. A busybox-static base image is imported into the engine and
# pushed to the registry.
#
# Tools: kube-apiserver (k8s.io/kubernetes at the version Argo CD's module requires), a
# multi-call argocd binary with the Argo CD components the tests run, and the helm CLI are built
# in one `go build` from scripts/testtools and cached under .testenv/bin/<hash of that module>.
# redis-server is installed; tests start argocd-repo-server, argocd-application-controller and
# argocd-cmp-server (with the strata plugin) as their own processes (internal/testing/argocdtest).
# The env file names them: STRATA_TEST_ARGOCD, STRATA_TEST_HELM, STRATA_TEST_REDIS.
# STRATA_TESTENV_ARGOCD=0 builds only the kube-apiserver.
#
# State lives under .testenv/ (ignored by git) or $STRATA_TESTENV_DIR. Ports can be moved with
# STRATA_TESTENV_REGISTRY_PORT (5000), STRATA_TESTENV_ETCD_PORT (23790, peer +10),
# STRATA_TESTENV_APISERVER_PORT (16443).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${STRATA_TESTENV_DIR:-$ROOT/.testenv}
REGISTRY_PORT=${STRATA_TESTENV_REGISTRY_PORT:-5000}
ETCD_PORT=${STRATA_TESTENV_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 10))
APISERVER_PORT=${STRATA_TESTENV_APISERVER_PORT:-16443}
STORAGE_DRIVER=${STRATA_TESTENV_STORAGE_DRIVER:-overlay2}
WITH_ARGOCD=${STRATA_TESTENV_ARGOCD:-1}
# The cosign CLI (scripts/cosign.sh, cached like the others) for the signing interop tests;
# STRATA_TESTENV_COSIGN=0 skips it.
WITH_COSIGN=${STRATA_TESTENV_COSIGN:-1}
BASE_IMAGE=127.0.0.1:$REGISTRY_PORT/library/busybox:latest

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

# --- processes we own -------------------------------------------------------------------------

# ours NAME: true if .testenv/NAME.pid names a live process started from our state dir.
ours() {
  local pidf=$W/run/$1.pid pid
  [ -f "$pidf" ] || return 1
  pid=$(cat "$pidf" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$W" || return 1
  echo "$pid"
}

port_in_use() { # PORT -> prints the listener if any
  ss -Hltnp "sport = :$1" 2>/dev/null | head -n 1
}

check_port() { # NAME PORT
  local l
  l=$(port_in_use "$2")
  [ -z "$l" ] || die "port 127.0.0.1:$2 (for $1) is already in use by another process: $l
  (set STRATA_TESTENV_${1^^}_PORT to another port, or stop that process)"
}

# preflight_ports: before starting anything, every port a service of ours is not already
# listening on must be free.
preflight_ports() {
  ours registry >/dev/null || check_port registry "$REGISTRY_PORT"
  if ! ours etcd >/dev/null; then
    check_port etcd "$ETCD_PORT"
    check_port etcd "$ETCD_PEER_PORT"
  fi
  ours kube-apiserver >/dev/null || check_port apiserver "$APISERVER_PORT"
}

wait_for() { # WHAT SECONDS COMMAND...
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_bg() { # NAME LOGFILE COMMAND... (records the PID)
  local name=$1 logf=$2
  shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  echo $! >"$W/run/$name.pid"
}

# --- install ----------------------------------------------------------------------------------

install_packages() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker-registry >/dev/null || need+=(docker-registry)
  [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx wget || need+=(busybox-static)
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v openssl >/dev/null || need+=(openssl)
  command -v ss >/dev/null || need+=(iproute2)
  if [ "$WITH_ARGOCD" = 1 ]; then command -v redis-server >/dev/null || need+=(redis-server); fi
  ((${#need[@]})) || return 0
  [ "$(id -u)" = 0 ] || die "must run as root to install ${need[*]} (apt-get)"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${need[@]}" >"$W/log/apt.log" 2>&1; then
    apt-get update >>"$W/log/apt.log" 2>&1 || true
    apt-get install -y --no-install-recommends "${need[@]}" >>"$W/log/apt.log" 2>&1 ||
      die "apt-get install ${need[*]} failed; see $W/log/apt.log: $(tail -n 3 "$W/log/apt.log")"
  fi
  # Debian's docker.io may start its own services elsewhere; we never rely on them.
}

# --- docker -----------------------------------------------------------------------------------

docker_cli() { DOCKER_HOST=unix://$W/docker.sock docker "$@"; }

up_docker() {
  if ours dockerd >/dev/null && docker_cli version >/dev/null 2>&1; then return 0; fi
  [ -S "$W/docker.sock" ] && rm -f "$W/docker.sock"
  mkdir -p "$W/docker" "$W/docker-exec"
  log "starting dockerd (storage driver $STORAGE_DRIVER)"
  start_bg dockerd "$W/log/dockerd.log" dockerd \
    --host "unix://$W/docker.sock" --data-root "$W/docker" --exec-root "$W/docker-exec" \
    --pidfile "$W/run/dockerd.self.pid" --iptables=false --ip6tables=false --bridge=none \
    --storage-driver="$STORAGE_DRIVER"
  wait_for dockerd 60 docker_cli version ||
    die "dockerd did not become ready in 60 s; see $W/log/dockerd.log: $(tail -n 3 "$W/log/dockerd.log")"
}

# --- registry ---------------------------------------------------------------------------------

up_registry() {
  if ours registry >/dev/null && curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1; then return 0; fi
  check_port registry "$REGISTRY_PORT"
  mkdir -p "$W/registry"
  cat >"$W/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $W/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  secret: strata-testenv-$(hostname)
EOF
  log "starting registry on 127.0.0.1:$REGISTRY_PORT"
  start_bg registry "$W/log/registry.log" docker-registry serve "$W/registry.yml"
  wait_for registry 20 curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" ||
    die "registry did not become ready; see $W/log/registry.log: $(tail -n 3 "$W/log/registry.log")"
}

# --- etcd + kube-apiserver --------------------------------------------------------------------

up_etcd() {
  if ours etcd >/dev/null && curl -fsS "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; then return 0; fi
  check_port etcd "$ETCD_PORT"
  check_port etcd "$ETCD_PEER_PORT"
  mkdir -p "$W/etcd"
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  start_bg etcd "$W/log/etcd.log" etcd --name testenv --data-dir "$W/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "testenv=http://127.0.0.1:$ETCD_PEER_PORT"
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health" ||
    die "etcd did not become ready; see $W/log/etcd.log: $(tail -n 3 "$W/log/etcd.log")"
}

# The test tools (kube-apiserver, argocd, helm) come from one module, scripts/testtools, built
# in one `go build` so the packages they share (client-go, apimachinery, gRPC…) are compiled once.
# Binaries are cached under .testenv/bin/<hash of that module's go.mod, go.sum and sources>.
TOOLS=$ROOT/scripts/testtools

tools_dir() {
  local key
  key=$(cat "$TOOLS/go.mod" "$TOOLS/go.sum" "$TOOLS"/*.go "$TOOLS"/argocd/*.go | sha256sum | cut -c1-16)
  echo "$W/bin/$key"
}

kube_apiserver_bin() { echo "$(tools_dir)/kube-apiserver"; }

# module_version MODULE: the version the tools module builds (for the binaries' version strings).
module_version() {
  (cd "$TOOLS" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$1")
}

# build_tools: the kube-apiserver, and with Argo CD enabled the argocd binary and helm. No
# -trimpath, as `go test` and `go run` build: the standard library compiled here is then reused
# for Strata. Flags must stay identical between runs, or Go recompiles everything.
build_tools() {
  local dir pkgs=() kube argo helmv kubectl minor
  dir=$(tools_dir)
  [ -x "$dir/kube-apiserver" ] || pkgs+=(k8s.io/kubernetes/cmd/kube-apiserver)
  if [ "$WITH_ARGOCD" = 1 ]; then
    [ -x "$dir/argocd" ] || pkgs+=(./argocd)
    [ -x "$dir/helm" ] || pkgs+=(helm.sh/helm/v3/cmd/helm)
  fi
  [ ${#pkgs[@]} -gt 0 ] || return 0
  command -v go >/dev/null || die "go is needed to build the test tools (scripts/testtools)"
  kube=$(module_version k8s.io/kubernetes) && argo=$(module_version github.com/argoproj/argo-cd/v3) &&
    helmv=$(module_version helm.sh/helm/v3) && kubectl=$(module_version k8s.io/kubectl) ||
    die "reading the tool versions from scripts/testtools/go.mod failed"
  minor=${kube#v1.}
  minor=${minor%%.*}
  log "building ${pkgs[*]##*/} (kube-apiserver $kube, Argo CD $argo, helm $helmv; cold: ~8 min on 2 cores, cached after)"
  rm -rf "$dir/tmp"
  mkdir -p "$dir/tmp"
  (cd "$TOOLS" && go build -ldflags "-s -w \
-X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
-X github.com/argoproj/argo-cd/v3/common.version=${argo#v} -X github.com/argoproj/argo-cd/v3/common.kubectlVersion=$kubectl \
-X helm.sh/helm/v3/internal/version.version=$helmv" \
    -o "$dir/tmp/" "${pkgs[@]}") >"$W/log/tools-build.log" 2>&1 ||
    die "building the test tools failed; see $W/log/tools-build.log: $(tail -n 5 "$W/log/tools-build.log")"
  mv "$dir"/tmp/* "$dir/"
  rmdir "$dir/tmp"
  # Tools of an older module state (~330 MB each) are removed once a day old; a younger one may
  # belong to another checkout sharing this state dir.
  local old
  for old in "$W"/bin/*/; do
    old=${old%/}
    [ "$old" != "$dir" ] && { [ -e "$old/kube-apiserver" ] || [ -e "$old/argocd" ]; } || continue
    [ -n "$(find "$old" -maxdepth 0 -mmin +1440)" ] || continue
    log "removing tools of an older module state: $old"
    rm -rf "$old"
  done
}

make_certs() {
  local p=$W/pki
  [ -f "$p/token" ] && [ -f "$p/apiserver.crt" ] && return 0
  mkdir -p "$p"
  log "generating certificates"
  (
    cd "$p"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=strata-testenv-ca"
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile san.ext
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
  ) >"$W/log/pki.log" 2>&1 || die "openssl failed; see $W/log/pki.log"
  printf '%s,strata-admin,strata-admin,system:masters\n' "$(cat "$p/token")" >"$p/tokens.csv"
}

write_kubeconfig() {
  cat >"$W/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $W/pki/ca.crt
users:
- name: strata-admin
  user:
    token: $(cat "$W/pki/token")
contexts:
- name: testenv
  context: {cluster: testenv, user: strata-admin}
current-context: testenv
EOF
  chmod 600 "$W/kubeconfig"
}

apiserver_ready() {
  curl -fsS --cacert "$W/pki/ca.crt" -H "Authorization: Bearer $(cat "$W/pki/token")" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"
}

up_apiserver() {
  build_tools
  make_certs
  write_kubeconfig
  if ours kube-apiserver >/dev/null && apiserver_ready >/dev/null 2>&1; then return 0; fi
  check_port apiserver "$APISERVER_PORT"
  log "starting kube-apiserver on 127.0.0.1:$APISERVER_PORT"
  start_bg kube-apiserver "$W/log/kube-apiserver.log" "$(kube_apiserver_bin)" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --etcd-prefix "/strata-testenv" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$W/pki/apiserver.crt" --tls-private-key-file="$W/pki/apiserver.key" \
    --client-ca-file="$W/pki/ca.crt" --token-auth-file="$W/pki/tokens.csv" \
    --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$W/pki/sa.pub" --service-account-signing-key-file="$W/pki/sa.key" \
    --enable-priority-and-fairness=false --endpoint-reconciler-type=none \
    --disable-admission-plugins=ServiceAccount --cert-dir="$W/pki/generated"
  wait_for kube-apiserver 90 apiserver_ready ||
    die "kube-apiserver did not become ready in 90 s; see $W/log/kube-apiserver.log: $(tail -n 3 "$W/log/kube-apiserver.log")"
}

# --- base image -------------------------------------------------------------------------------

up_base_image() {
  if curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/library/busybox/manifests/latest" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' >/dev/null 2>&1 &&
    docker_cli image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  log "making base image $BASE_IMAGE from busybox-static"
  local r=$W/busybox-rootfs
  rm -rf "$r"
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root" "$r/usr/bin" "$r/sbin" "$r/usr/sbin"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  # Fixed timestamps so the imported layer is the same on every machine.
  find "$r" -exec touch -h -d '2000-01-01 00:00:00' {} +
  tar --sort=name --numeric-owner --owner=0 --group=0 -C "$r" -c . |
    docker_cli import -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/sh"]' - "$BASE_IMAGE" >/dev/null
  docker_cli push "$BASE_IMAGE" >"$W/log/push-base.log" 2>&1 ||
    die "pushing $BASE_IMAGE failed; see $W/log/push-base.log"
}

# --- commands ---------------------------------------------------------------------------------

print_env() {
  cat <<EOF
export DOCKER_HOST=unix://$W/docker.sock
export KUBECONFIG=$W/kubeconfig
export STRATA_TEST_REGISTRY=127.0.0.1:$REGISTRY_PORT
export STRATA_TEST_BASE_IMAGE=$BASE_IMAGE
export STRATA_TESTENV_DIR=$W
EOF
  if [ "$WITH_ARGOCD" = 1 ]; then
    local dir
    dir=$(tools_dir)
    cat <<EOF
export STRATA_TEST_ARGOCD=$dir/argocd
export STRATA_TEST_HELM=$dir/helm
export STRATA_TEST_REDIS=$(command -v redis-server)
EOF
  fi
  # cosign is named when built, even by an earlier `up` (make demo skips building it).
  if [ "$WITH_COSIGN" = 1 ] || [ -x "$W/bin/cosign" ]; then
    echo "export STRATA_TEST_COSIGN=$W/bin/cosign"
  fi
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "must run as root: dockerd and package installs need it"
  mkdir -p "$W/run" "$W/log" "$W/bin"
  command -v curl >/dev/null || die "curl is needed"
  install_packages
  preflight_ports
  # Independent pieces in parallel: the tools build is the long one. If anything below fails,
  # the builds are stopped too (nothing of ours keeps running half set up).
  build_tools &
  local kb=$! cb=
  trap 'kill "$kb" $cb 2>/dev/null || true' EXIT
  if [ "$WITH_COSIGN" = 1 ]; then
    STRATA_TESTENV_DIR=$W "$ROOT/scripts/cosign.sh" path >/dev/null &
    cb=$!
  fi
  up_docker
  up_registry
  up_etcd
  up_base_image
  wait "$kb" || die "building the test tools failed"
  if [ -n "$cb" ]; then wait "$cb" || die "cosign build failed (scripts/cosign.sh)"; fi
  trap - EXIT
  up_apiserver
  print_env >"$W/env"
  print_env
  log "up (env in $W/env)"
}

cmd_down() {
  local name pid
  for name in kube-apiserver etcd registry dockerd; do
    if pid=$(ours "$name"); then
      log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$W/run/$name.pid"
  done
  # dockerd's own containerd child stops with it; nothing else is touched.
  unmount_state
  rm -f "$W/env"
}

# unmount_state: unmount whatever is still mounted under the state dir once its processes are
# gone. dockerd leaves the bind mount of its network namespace (docker-exec/netns/default), and
# a killed dockerd its data-root mounts; with them in place `rm -rf` of the tree fails with
# "Device or resource busy". Deepest first; a busy mount is detached lazily.
unmount_state() {
  local real m
  real=$(realpath "$W" 2>/dev/null) || return 0
  awk -v p="$real" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -ru |
    while read -r m; do
      m=$(printf '%b' "${m//\\/\\0}") # mountinfo escapes space, tab, newline and \ in octal
      log "unmounting $m"
      umount "$m" 2>/dev/null || umount -l "$m" || log "could not unmount $m"
    done
}

cmd_status() {
  local name pid rc=0
  for name in dockerd registry etcd kube-apiserver; do
    if pid=$(ours "$name"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
  done
  if [ "$WITH_ARGOCD" = 1 ]; then
    local dir
    dir=$(tools_dir)
    if [ -x "$dir/argocd" ] && [ -x "$dir/helm" ]; then echo "argocd, helm: built ($dir)"; else echo "argocd, helm: not built"; rc=1; fi
  fi
  if [ "$WITH_COSIGN" = 1 ]; then
    if [ -x "$W/bin/cosign" ]; then echo "cosign: built ($(readlink "$W/bin/cosign"))"; else echo "cosign: not built"; rc=1; fi
  fi
  return $rc
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
env)
  [ -f "$W/env" ] || die "not up; run: scripts/testenv.sh up"
  cat "$W/env"
  ;;
status) cmd_status ;;
*)
  echo "usage: $0 up|down|env|status" >&2
  exit 2
  ;;
esac
