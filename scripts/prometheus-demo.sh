#!/usr/bin/env bash
# The operations journey on a dev box, on loopback only: a broker with its /metrics listener, a
# real Prometheus scraping it every second with the shipped rules (config/prometheus/alerts.yml),
# a game server (gameserver_sim) attached and then killed, and the MembrokerClientDead alert
# firing. Prints each step's command and what it answered, then stops both (by pid) and removes
# its temporary directory. README's "Seen in Prometheus" section shows a run.
#
#   scripts/prometheus-demo.sh [BUILD_DIR]
#
# BUILD_DIR holds membroker and gameserver_sim (default: build/native; built there if missing).
# Needs the Prometheus server (/usr/bin/prometheus, Debian package prometheus) and curl, both
# installed by scripts/deps.sh. tests/test-prometheus.c runs the same journey with assertions.
set -Eeuo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build/native}
prometheus=${PROMETHEUS:-/usr/bin/prometheus}

for tool in "$prometheus" curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "prometheus-demo: $tool is not installed (scripts/deps.sh installs it)" >&2
    exit 1
  fi
done
if [[ ! -x $build/membroker || ! -x $build/gameserver_sim ]]; then
  echo "prometheus-demo: building membroker and gameserver_sim in $build" >&2
  cmake -S "$root" -B "$build" -G Ninja >/dev/null
  cmake --build "$build" -j2 --target membroker gameserver_sim >/dev/null
fi

tmp=$(mktemp -d /tmp/membroker-prometheus-demo.XXXXXX)
broker_pid='' prom_pid='' sim_pid=''
cleanup() {
  local pid
  for pid in $sim_pid $prom_pid $broker_pid; do
    if kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Poll `cmd` (a shell command) every 0.2 s until it succeeds, for at most $1 seconds.
wait_for() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 5; i++)); do
    if eval "$*"; then return 0; fi
    sleep 0.2
  done
  echo "prometheus-demo: timed out after ${seconds}s waiting for: $*" >&2
  echo "--- membroker:" >&2
  cat "$tmp/membroker.out" >&2 || true
  echo "--- prometheus:" >&2
  tail -20 "$tmp/prometheus.out" >&2 || true
  exit 1
}

# A loopback port nothing listens on, from 19090 up.
free_port() {
  local p
  for ((p = 19090; p < 19190; p++)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "prometheus-demo: no free loopback port in 19090..19189" >&2
  exit 1
}

pretty() { if command -v python3 >/dev/null; then python3 -m json.tool; else cat; echo; fi; }

# 1. The broker: a small config with one pool, the listener on a port the OS picks (its log
#    says which), a long grace period so the dead game server's entry stays while we look.
instance=demo$$
cat >"$tmp/membroker.json" <<EOF
{
  "instance": "$instance",
  "clients": { "grace_period_ms": 600000 },
  "metrics": { "listen": "127.0.0.1:0" },
  "regions": [
    { "name": "world", "size": "4MiB", "commit": "start" },
    { "name": "players", "size": "1MiB", "commit": "lazy", "slot_size": "1KiB" }
  ],
  "pools": [ { "name": "bullets", "object_size": "64B", "capacity": 1000 } ]
}
EOF
"$build/membroker" run -c "$tmp/membroker.json" >"$tmp/membroker.out" 2>&1 &
broker_pid=$!
wait_for 20 "grep -qs 'metrics listener on' '$tmp/membroker.out'"
bport=$(sed -n 's/.*metrics listener on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/membroker.out")
echo "\$ membroker run -c membroker.json      # metrics.listen \"127.0.0.1:0\""
grep 'metrics listener on' "$tmp/membroker.out"
echo
echo "\$ curl -s 127.0.0.1:$bport/metrics | grep -E '^membroker_(up|committed_bytes|pool_(free|capacity)\{|clients\{)'"
curl -s "127.0.0.1:$bport/metrics" | grep -E '^membroker_(up|committed_bytes|pool_(free|capacity)\{|clients\{)'
echo

# 2. Prometheus on loopback: its own data directory, scrape and evaluate every second.
pport=$(free_port)
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $root/config/prometheus/alerts.yml
scrape_configs:
  - job_name: membroker
    static_configs:
      - targets: ["127.0.0.1:$bport"]
EOF
"$prometheus" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$pport" >"$tmp/prometheus.out" 2>&1 &
prom_pid=$!
wait_for 30 "curl -sf '127.0.0.1:$pport/-/ready' >/dev/null"
wait_for 30 "curl -s '127.0.0.1:$pport/api/v1/targets' | grep -q '\"health\":\"up\"'"
echo "\$ curl -s 127.0.0.1:$pport/api/v1/targets | grep -o '\"scrapeUrl\":\"[^\"]*\"\\|\"health\":\"[a-z]*\"'"
curl -s "127.0.0.1:$pport/api/v1/targets" | grep -o '"scrapeUrl":"[^"]*"\|"health":"[a-z]*"'
echo
wait_for 30 "curl -s '127.0.0.1:$pport/api/v1/query?query=membroker_up' | grep -q '\"1\"'"
echo "\$ curl -s '127.0.0.1:$pport/api/v1/query?query=membroker_up'"
curl -s "127.0.0.1:$pport/api/v1/query?query=membroker_up"
echo
echo

# 3. A game server attaches, then dies.
"$build/gameserver_sim" --instance "$instance" --name zone-7 --players 5 --steady \
  >"$tmp/gameserver_sim.out" 2>&1 &
sim_pid=$!
wait_for 20 "curl -s '127.0.0.1:$bport/metrics' | grep -q '^membroker_clients{broker=\"$instance\",state=\"attached\"} 1'"
echo "\$ gameserver_sim --instance $instance --name zone-7 --players 5 --steady &   # pid $sim_pid"
echo "\$ kill -9 $sim_pid"
{ kill -9 "$sim_pid" && wait "$sim_pid"; } 2>/dev/null || true
sim_pid=''
wait_for 20 "curl -s '127.0.0.1:$bport/metrics' | grep -q '^membroker_client_deaths_total{broker=\"$instance\",reason=\"exited\"} 1'"
echo "\$ curl -s 127.0.0.1:$bport/metrics | grep -E '^membroker_(clients|client_deaths_total)\{'"
curl -s "127.0.0.1:$bport/metrics" | grep -E '^membroker_(clients|client_deaths_total)\{'
echo

# 4. The alert, firing.
wait_for 30 "curl -s '127.0.0.1:$pport/api/v1/alerts' | grep -q '\"alertname\":\"MembrokerClientDead\".*\"state\":\"firing\"'"
echo "\$ curl -s 127.0.0.1:$pport/api/v1/alerts | python3 -m json.tool"
curl -s "127.0.0.1:$pport/api/v1/alerts" | pretty
echo

# 5. Stop both, as a service manager would.
kill -TERM "$prom_pid"
wait "$prom_pid" && prom_code=0 || prom_code=$?
kill -TERM "$broker_pid"
wait "$broker_pid" && broker_code=0 || broker_code=$?
prom_pid='' broker_pid=''
echo "stopped Prometheus (exit $prom_code) and the broker (exit $broker_code); removed $tmp"
