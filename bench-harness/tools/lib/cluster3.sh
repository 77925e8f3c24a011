# A 3-node cluster of this machine for the replication benchmarks:
# `replication_preview = true`, one shard per broker, the three brokers
# pinned to core 0, Kafka listeners on 127.0.0.1:29201-29203, internal
# listeners on 29211-29213. Source it after ci/lib/broker.sh.
#
#   start_cluster BIN OUT   # sets PIDS (the brokers) and W (their write size)
#   stop_cluster OUT        # stops them and removes their data

start_cluster() {
  local bin=$1 out=$2 voters=1@127.0.0.1:29211,2@127.0.0.1:29212,3@127.0.0.1:29213 i n
  cat > "$out/cluster.toml" <<CONF
broker_heartbeat_interval_ms = 500
broker_session_timeout_ms = 3000
replication_preview = true
CONF
  PIDS=()
  for i in 1 2 3; do
    rm -rf "$out/data-$i"; mkdir -p "$out/data-$i"
    start_broker "$out/ready-$i.json" "$out/broker-$i.log" 60 taskset -c 0 "$bin" serve --cores 1 \
      --config "$out/cluster.toml" --data-dir "$out/data-$i" --listen 127.0.0.1:2920$i \
      --node-id $i --cluster-listen 127.0.0.1:2921$i --controller-quorum-voters $voters ||
      { echo "broker $i did not start; its log ends:" >&2; tail -n 15 "$out/broker-$i.log" >&2; stop_cluster "$out"; return 1; }
    PIDS+=("$broker_pid")
  done
  W=$broker_write_bytes
  # Until the quorum has a leader and all three brokers are unfenced.
  for _ in $(seq 150); do
    n=$("$bin" cluster status --bootstrap 127.0.0.1:29211 --json 2>/dev/null |
      python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(1 for b in s["brokers"] if not b["fenced"]) if s.get("leader") else 0)' 2>/dev/null)
    [ "${n:-0}" = 3 ] && return 0
    sleep 0.2
  done
  echo "the cluster did not settle" >&2
  return 1
}

stop_cluster() {
  kill "${PIDS[@]}" 2>/dev/null; wait "${PIDS[@]}" 2>/dev/null
  rm -rf "$1"/data-*
}
