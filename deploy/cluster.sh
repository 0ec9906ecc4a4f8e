#!/usr/bin/env bash
# A Bazaar cluster on one machine, on loopback: PostgreSQL (the truth), Redis
# (the bus between nodes), N `bazaar serve` nodes and nginx in front of them,
# each run from DIR and stopped by the PID recorded there. It installs
# nothing; it says which Debian package is missing.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage:
  deploy/cluster.sh up     --dir DIR [--nodes N] [--port P] [--workers W]
  deploy/cluster.sh down   --dir DIR
  deploy/cluster.sh status --dir DIR
  deploy/cluster.sh start  PART --dir DIR
  deploy/cluster.sh stop   PART --dir DIR

up      starts PostgreSQL 15, Redis, N nodes (default 3) and nginx on
        127.0.0.1:P (default 8080), then prints nginx's URL once every node
        answers /healthz. Each node starts W local workers (default 0).
        Data, logs, ports and PIDs stay in DIR; `up` again after `down`
        picks the data up where it was.
down    stops what `up` started, by PID: nginx, the nodes, Redis, then
        PostgreSQL. Running it twice is harmless. DIR is kept.
status  each part's PID, port and state, and each node's /healthz answer;
        exits 1 when a part is not running.
start   starts one part again on its recorded port, e.g. after a drill
        killed it. PART is postgres, redis, node-1 ... node-N or nginx.
stop    stops one part, as `down` stops each.

Environment:
  BAZAAR_BIN       the bazaar binary (default: target/release/bazaar of this
                   checkout; `up` does not build it)
  BAZAAR_PG_BIN    PostgreSQL's programs (default /usr/lib/postgresql/15/bin)
  BAZAAR_CONFIG    a bazaar.toml for every node (default DIR/bazaar.toml,
                   if it exists)
  BAZAAR_CLUSTER_TIMEOUT  seconds `up` waits for the nodes (default 60)
Other BAZAAR_* variables reach every node, except the ones `up` sets:
data_dir, server.bind, server.public_url, server.trusted_proxies,
database.url, bus.redis_url, workers.local, and the shared workers.token,
api.token and accounts.session_key (generated once into DIR/worker_token,
DIR/api_token and DIR/session_key).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${BAZAAR_PG_BIN:-/usr/lib/postgresql/15/bin}
# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# How long a part gets to stop on its own before it is killed. A node's
# graceful stop (1001 to every socket, then requests in flight) takes at
# most about 10s.
STOP_TIMEOUT=15

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

say() {
  echo "cluster.sh: $*" >&2
}

# --- DIR's layout ---------------------------------------------------------
#   DIR/settings        key value: bin, nodes, workers, database_url, ...
#   DIR/ports           name port, one part a line
#   DIR/pids/NAME.pid   the PID of each running part
#   DIR/pids/NAME.start its start time (/proc/PID/stat), so a PID the
#                       kernel has since given to another process is
#                       never signalled
#   DIR/logs/NAME.log   each part's output
#   DIR/postgres/       PostgreSQL's data and socket dirs
#   DIR/redis/          Redis's working dir (it persists nothing)
#   DIR/node-I/         each node's data_dir
#   DIR/nginx.conf      written from deploy/nginx.conf; nginx/ its temp files

setting() {
  local key=$1 k v
  [ -f "$DIR/settings" ] || return 1
  while read -r k v; do
    if [ "$k" = "$key" ]; then
      printf '%s\n' "$v"
      return 0
    fi
  done <"$DIR/settings"
  return 1
}

port_of() {
  local name=$1 n p
  [ -f "$DIR/ports" ] || return 1
  while read -r n p; do
    if [ "$n" = "$name" ]; then
      printf '%s\n' "$p"
      return 0
    fi
  done <"$DIR/ports"
  return 1
}

# The start time of a process in clock ticks since boot (field 22 of
# /proc/PID/stat), or nothing when it is gone or a zombie. The command name
# in field 2 may hold spaces, so fields are counted after its last ')'.
start_time() {
  local pid=$1 stat rest
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  rest=${stat##*) }
  local -a fields
  read -r -a fields <<<"$rest"
  [ "${fields[0]}" != Z ] || return 1
  printf '%s\n' "${fields[19]}"
}

record_pid() {
  local name=$1 pid=$2 started
  started=$(start_time "$pid") || started=gone
  printf '%s\n' "$pid" >"$DIR/pids/$name.pid"
  printf '%s\n' "$started" >"$DIR/pids/$name.start"
}

# The recorded PID of a part, if that very process still runs.
running_pid() {
  local name=$1 pid recorded now
  [ -f "$DIR/pids/$name.pid" ] || return 1
  pid=$(cat "$DIR/pids/$name.pid")
  recorded=$(cat "$DIR/pids/$name.start" 2>/dev/null) || return 1
  now=$(start_time "$pid") || return 1
  [ "$now" = "$recorded" ] || return 1
  printf '%s\n' "$pid"
}

# Names of the parts in the order they start.
parts() {
  local i nodes
  nodes=$(setting nodes) || return 0
  echo postgres
  echo redis
  for ((i = 1; i <= nodes; i++)); do echo "node-$i"; done
  echo nginx
}

# Sends `signal`, waits up to STOP_TIMEOUT, then SIGKILL; forgets the PID.
stop_part() {
  local name=$1 signal=TERM pid waited=0
  # PostgreSQL's TERM is a "smart" stop that waits for every client to
  # leave; INT is its fast stop, which ends their sessions.
  [ "$name" != postgres ] || signal=INT
  if pid=$(running_pid "$name"); then
    kill -s "$signal" "$pid" 2>/dev/null || true
    while running_pid "$name" >/dev/null && ((waited < STOP_TIMEOUT * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if running_pid "$name" >/dev/null; then
      say "$name (PID $pid) did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -s KILL "$pid" 2>/dev/null || true
      waited=0
      while running_pid "$name" >/dev/null && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
      done
    fi
    say "stopped $name (PID $pid)"
  fi
  rm -f "$DIR/pids/$name.pid" "$DIR/pids/$name.start"
}

# nginx first, so no new client reaches a node that is stopping; the
# database last, so the nodes can store what they hold as they stop.
stop_all() {
  local name
  stop_part nginx
  for name in $(parts | grep '^node-' | sort -r); do stop_part "$name"; done
  stop_part redis
  stop_part postgres
}

# --- What must be installed -----------------------------------------------

check_prerequisites() {
  local missing=() program
  [ -x "$NGINX" ] || missing+=("nginx (Debian package nginx)")
  command -v redis-server >/dev/null || missing+=("redis-server (Debian package redis-server)")
  for program in initdb pg_ctl postgres psql createdb; do
    [ -x "$PG_BIN/$program" ] ||
      missing+=("$PG_BIN/$program (Debian package postgresql-15; or set BAZAAR_PG_BIN)")
  done
  if [ "$(id -u)" -eq 0 ]; then
    command -v runuser >/dev/null || missing+=("runuser (Debian package util-linux)")
    id postgres >/dev/null 2>&1 ||
      missing+=("the postgres user (Debian package postgresql-15 creates it)")
  fi
  command -v curl >/dev/null || missing+=("curl (Debian package curl)")
  if [ ${#missing[@]} -gt 0 ]; then
    say "missing:"
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
  fi
  command -v redis-cli >/dev/null ||
    say "note: redis-cli (Debian package redis-tools) is missing; status will not ping Redis"
}

find_bin() {
  if [ -n "${BAZAAR_BIN:-}" ]; then
    [ -x "$BAZAAR_BIN" ] || die "BAZAAR_BIN=$BAZAAR_BIN is not an executable"
    (cd "$(dirname "$BAZAAR_BIN")" && printf '%s/%s\n' "$(pwd)" "$(basename "$BAZAAR_BIN")")
  elif [ -x "$ROOT/target/release/bazaar" ]; then
    printf '%s\n' "$ROOT/target/release/bazaar"
  else
    die "no bazaar binary: run \`cargo build --release\` in $ROOT, or set BAZAAR_BIN"
  fi
}

# --- Ports and secrets ----------------------------------------------------

# Whether something on loopback accepts connections on `port`.
port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The ports this run has taken so far, the last one picked last.
CHOSEN=()

# Appends to CHOSEN a port nothing listens on, below Linux's ephemeral range
# (32768 and up, where outgoing connections take theirs), and not chosen
# before in this run. Not for $(...): the choice must outlive a subshell.
pick_port() {
  local port tries=0
  while ((tries < 1000)); do
    port=$((10000 + RANDOM % 22000))
    tries=$((tries + 1))
    if [[ " ${CHOSEN[*]} " == *" $port "* ]] || port_taken "$port"; then
      continue
    fi
    CHOSEN+=("$port")
    return 0
  done
  die "found no free port on 127.0.0.1"
}

# 40 letters and digits, as the server itself generates (src/secrets.rs).
make_secret() {
  local file=$1
  if [ ! -s "$file" ]; then
    (
      umask 077
      head -c 90 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | cut -c1-40 >"$file"
    )
  fi
}

# --- Starting each part ---------------------------------------------------

# Runs a command as the postgres user when we are root (PostgreSQL refuses
# to run as root), from a directory that user can read.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$DIR/postgres" && runuser -u postgres -- "$@")
  else
    (cd "$DIR/postgres" && "$@")
  fi
}

start_postgres() {
  local port data=$DIR/postgres/data sockets=$DIR/postgres/run log=$DIR/logs/postgres.log
  port=$(port_of postgres)
  mkdir -p "$data" "$sockets"
  touch "$log"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$DIR/postgres" "$log"
    chmod 700 "$data"
    runuser -u postgres -- test -x "$DIR/postgres" ||
      die "the postgres user cannot reach $DIR; choose a DIR every user may enter (e.g. under /tmp)"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    say "creating the PostgreSQL cluster in $data"
    as_postgres "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync \
      >>"$log" 2>&1 || fail_with postgres "initdb failed"
    # Loopback only, and sockets in a folder of ours rather than
    # /var/run/postgresql, which needs root.
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '${sockets//\'/\'\'}'"
    } >>"$data/postgresql.conf"
  fi
  # Each node opens at most 16 connections (src/db.rs); room for N of them
  # plus `bazaar migrate`, psql and the tests.
  local max=$(($(setting nodes) * 20 + 20))
  # pg_ctl's own messages and the server's log go to one file, both appending.
  # shellcheck disable=SC2094
  as_postgres "$PG_BIN/pg_ctl" start -D "$data" -l "$log" -w -t 60 -s \
    -o "-p $port -N $max" >>"$log" 2>&1 || fail_with postgres "PostgreSQL did not start"
  # pg_ctl leaves the server running on its own: its PID is the first line
  # of postmaster.pid.
  record_pid postgres "$(head -n 1 "$data/postmaster.pid")"
  if ! as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'bazaar'" 2>>"$log" | grep 1 >/dev/null; then
    as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres bazaar >>"$log" 2>&1 ||
      fail_with postgres "could not create the database bazaar"
  fi
  say "postgres on 127.0.0.1:$port"
}

# Every part started in the background gets its own session (setsid), so a
# Ctrl-C or hangup in the terminal that ran `up` does not reach it, and no
# descriptor of ours: the caller's pipes close when `up` exits. A child of
# a non-interactive shell is no process group leader, so setsid execs in
# place and $! is the part's own PID.
spawn() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$DIR/logs/$name.log" 2>&1 &
  record_pid "$name" "$!"
}

start_redis() {
  local port
  port=$(port_of redis)
  mkdir -p "$DIR/redis"
  # The bus carries events, not state: nothing to save, nothing to reload.
  spawn redis redis-server --bind 127.0.0.1 --port "$port" --dir "$DIR/redis" \
    --save '' --appendonly no --daemonize no --logfile ''
  wait_for_port redis "$port"
  say "redis on 127.0.0.1:$port"
}

# The settings `up` gives every node, exported into the caller's (sub)shell
# rather than passed on a command line, where `ps` would show the secrets.
export_node_env() {
  local name=$1
  export BAZAAR_CONFIG="${BAZAAR_CONFIG:-$DIR/bazaar.toml}"
  export BAZAAR_DATA_DIR="$DIR/$name"
  BAZAAR_SERVER__BIND="127.0.0.1:$(port_of "$name")"
  # Every node's public URL is nginx's: pages link there, and /ws accepts
  # a browser's socket only from a page of that origin.
  BAZAAR_SERVER__PUBLIC_URL=$(setting url)
  # Every request reaches a node from nginx on loopback, and nginx's
  # X-Forwarded-For names the client (deploy/nginx.conf).
  BAZAAR_SERVER__TRUSTED_PROXIES=127.0.0.1
  BAZAAR_DATABASE__URL=$(setting database_url)
  BAZAAR_BUS__REDIS_URL=$(setting redis_url)
  BAZAAR_WORKERS__LOCAL=$(setting workers)
  BAZAAR_WORKERS__TOKEN=$(cat "$DIR/worker_token")
  BAZAAR_API__TOKEN=$(cat "$DIR/api_token")
  BAZAAR_ACCOUNTS__SESSION_KEY=$(cat "$DIR/session_key")
  export BAZAAR_SERVER__BIND BAZAAR_SERVER__PUBLIC_URL BAZAAR_SERVER__TRUSTED_PROXIES \
    BAZAAR_DATABASE__URL BAZAAR_BUS__REDIS_URL BAZAAR_WORKERS__LOCAL BAZAAR_WORKERS__TOKEN \
    BAZAAR_API__TOKEN BAZAAR_ACCOUNTS__SESSION_KEY
}

start_node() {
  local name=$1
  mkdir -p "$DIR/$name"
  (
    export_node_env "$name"
    spawn "$name" "$(setting bin)" serve
  )
  say "$name on 127.0.0.1:$(port_of "$name")"
}

start_nginx() {
  local port addrs=() name
  port=$(port_of nginx)
  for name in $(parts | grep '^node-'); do addrs+=("127.0.0.1:$(port_of "$name")"); done
  mkdir -p "$DIR/nginx"
  awk -v nodes="${addrs[*]}" -v listen="127.0.0.1:$port" '
    /@NODE@/ {
      n = split(nodes, addr, " ")
      for (i = 1; i <= n; i++) { line = $0; sub(/@NODE@/, addr[i], line); print line }
      next
    }
    { gsub(/@LISTEN@/, listen); print }
  ' "$ROOT/deploy/nginx.conf" >"$DIR/nginx.conf"
  "$NGINX" -t -q -p "$DIR/" -c "$DIR/nginx.conf" -e logs/nginx.log >>"$DIR/logs/nginx.log" 2>&1 ||
    fail_with nginx "nginx refused $DIR/nginx.conf"
  spawn nginx "$NGINX" -p "$DIR/" -c "$DIR/nginx.conf" -e logs/nginx.log
  wait_for_port nginx "$port"
  say "nginx on 127.0.0.1:$port"
}

start_one() {
  case $1 in
    postgres) start_postgres ;;
    redis) start_redis ;;
    node-*) start_node "$1" ;;
    nginx) start_nginx ;;
  esac
}

# --- Waiting and failing --------------------------------------------------

FAILED_PART=""

fail_with() {
  FAILED_PART=$1
  die "$2"
}

# Shows the end of a part's log, where its reason for failing usually is.
show_log() {
  local name=$1
  if [ -s "$DIR/logs/$name.log" ]; then
    say "the last lines of $DIR/logs/$name.log:"
    tail -n 30 "$DIR/logs/$name.log" | sed 's/^/  | /' >&2
  fi
}

deadline() {
  echo $((SECONDS + ${BAZAAR_CLUSTER_TIMEOUT:-60}))
}

wait_for_port() {
  local name=$1 port=$2 until
  until=$(deadline)
  until port_taken "$port"; do
    running_pid "$name" >/dev/null || fail_with "$name" "$name exited while starting"
    ((SECONDS < until)) || fail_with "$name" "$name did not listen on port $port in time"
    sleep 0.1
  done
}

healthz() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz" 2>/dev/null
}

# Polls every node's /healthz until all answer, one dot a second.
wait_for_nodes() {
  local until waiting=() name ticks=0
  until=$(deadline)
  for name in $(parts | grep '^node-'); do waiting+=("$name"); done
  printf 'cluster.sh: waiting for %s to answer /healthz ' "${waiting[*]}" >&2
  while [ ${#waiting[@]} -gt 0 ]; do
    local still=()
    for name in "${waiting[@]}"; do
      if healthz "$(port_of "$name")" >/dev/null; then
        continue
      fi
      if ! running_pid "$name" >/dev/null; then
        echo >&2
        fail_with "$name" "$name exited while starting"
      fi
      still+=("$name")
    done
    waiting=("${still[@]}")
    [ ${#waiting[@]} -gt 0 ] || break
    if ((SECONDS >= until)); then
      echo >&2
      fail_with "${waiting[0]}" "${waiting[*]} did not answer /healthz within ${BAZAAR_CLUSTER_TIMEOUT:-60}s"
    fi
    sleep 0.2
    ticks=$((ticks + 1))
    ((ticks % 5)) || printf '.' >&2
  done
  echo ' ok' >&2
}

# On a failed `up`: the failing part's log, then nothing left running.
up_failed() {
  local status=$?
  trap - EXIT
  [ -z "$FAILED_PART" ] || show_log "$FAILED_PART"
  say "stopping what was started"
  stop_all
  exit "$status"
}

# --- Commands -------------------------------------------------------------

cmd_up() {
  local nodes=$1 port=$2 workers=$3 bin name
  [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes wants a count of at least 1, not $nodes"
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "--port wants a port, not $port"
  fi
  [[ "$workers" =~ ^[0-9]+$ ]] || die "--workers wants a count, not $workers"
  check_prerequisites
  bin=$(find_bin)
  mkdir -p "$DIR/pids" "$DIR/logs"
  DIR=$(cd "$DIR" && pwd)
  for name in $(parts); do
    ! running_pid "$name" >/dev/null ||
      die "$name is already running in $DIR; see \`$0 status --dir $DIR\`, or run down first"
  done
  port_taken "$port" && die "port $port is taken on 127.0.0.1"
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL and nginx's workers run as other users and must pass
    # through DIR to their own folders; this lets them in, not list it.
    chmod o+x "$DIR"
  fi
  # Sockets are files: raise the soft limit to the hard one for every part.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

  CHOSEN=("$port")
  local names=(postgres redis) i
  for ((i = 1; i <= nodes; i++)); do names+=("node-$i"); done
  {
    for name in "${names[@]}"; do
      pick_port
      echo "$name ${CHOSEN[-1]}"
    done
    echo "nginx $port"
  } >"$DIR/ports"
  {
    echo "bin $bin"
    echo "nodes $nodes"
    echo "workers $workers"
    echo "url http://127.0.0.1:$port"
    echo "database_url postgres://postgres@127.0.0.1:$(port_of postgres)/bazaar"
    echo "redis_url redis://127.0.0.1:$(port_of redis)/"
  } >"$DIR/settings"
  make_secret "$DIR/worker_token"
  make_secret "$DIR/api_token"
  make_secret "$DIR/session_key"

  trap up_failed EXIT
  trap 'exit 130' INT TERM
  start_postgres
  start_redis
  # Once, before the nodes: each would otherwise migrate the fresh database
  # at startup, all at the same time.
  (
    export_node_env node-1
    "$bin" migrate </dev/null >>"$DIR/logs/migrate.log" 2>&1
  ) || fail_with migrate "bazaar migrate failed"
  for name in $(parts | grep '^node-'); do start_node "$name"; done
  wait_for_nodes
  start_nginx
  local until
  until=$(deadline)
  until healthz "$port" >/dev/null; do
    ((SECONDS < until)) || fail_with nginx "nginx did not pass /healthz through in time"
    sleep 0.1
  done
  trap - EXIT INT TERM
  say "up: $nodes nodes behind nginx; API token in $DIR/api_token"
  echo "http://127.0.0.1:$port"
}

cmd_down() {
  if [ ! -d "$DIR/pids" ]; then
    say "nothing was started in $DIR"
    return 0
  fi
  stop_all
  say "down; data and logs are kept in $DIR"
}

cmd_status() {
  local name pid port state detail all_up=0
  [ -f "$DIR/settings" ] || die "no cluster in $DIR (run up first)"
  printf '%-9s %-8s %-6s %-8s %s\n' PART PID PORT STATE DETAIL
  for name in $(parts); do
    port=$(port_of "$name" || echo -)
    detail=""
    if pid=$(running_pid "$name"); then
      state=running
      case $name in
        node-* | nginx) detail=$(healthz "$port" || echo "/healthz did not answer") ;;
        redis) if command -v redis-cli >/dev/null; then
          detail=$(redis-cli -h 127.0.0.1 -p "$port" ping 2>&1 || true)
        fi ;;
        postgres) detail=$(setting database_url) ;;
      esac
    else
      pid=$(cat "$DIR/pids/$name.pid" 2>/dev/null || echo -)
      state=stopped
      all_up=1
    fi
    printf '%-9s %-8s %-6s %-8s %s\n' "$name" "$pid" "$port" "$state" "$detail"
  done
  echo "url $(setting url)"
  return "$all_up"
}

cmd_start() {
  local name=$1
  parts | grep -x -- "$name" >/dev/null || die "no part $name in $DIR (parts: $(parts | tr '\n' ' '))"
  running_pid "$name" >/dev/null && die "$name is already running"
  check_prerequisites
  mkdir -p "$DIR/pids" "$DIR/logs"
  trap 'show_log "$FAILED_PART"' EXIT
  start_one "$name"
  case $name in node-*) wait_for_nodes_only "$name" ;; esac
  trap - EXIT
}

# `start node-I` waits for that node's /healthz alone.
wait_for_nodes_only() {
  local name=$1 until
  until=$(deadline)
  until healthz "$(port_of "$name")" >/dev/null; do
    running_pid "$name" >/dev/null || fail_with "$name" "$name exited while starting"
    ((SECONDS < until)) || fail_with "$name" "$name did not answer /healthz in time"
    sleep 0.1
  done
}

cmd_stop() {
  local name=$1
  parts | grep -x -- "$name" >/dev/null || die "no part $name in $DIR (parts: $(parts | tr '\n' ' '))"
  stop_part "$name"
}

main() {
  [ $# -gt 0 ] || {
    usage >&2
    exit 2
  }
  local command=$1 part="" nodes=3 port=8080 workers=0
  shift
  case $command in
    -h | --help | help)
      usage
      exit 0
      ;;
    up | down | status) ;;
    start | stop)
      if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
        die "$command wants a PART (see -h)"
      fi
      part=$1
      shift
      ;;
    *) die "unknown command $command (see -h)" ;;
  esac
  DIR=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) DIR=${2:?--dir wants a folder} ;;
      --nodes) nodes=${2:?--nodes wants a count} ;;
      --port) port=${2:?--port wants a port} ;;
      --workers) workers=${2:?--workers wants a count} ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) die "unknown option $1 (see -h)" ;;
    esac
    shift 2
  done
  [ -n "$DIR" ] || die "$command wants --dir DIR (see -h)"
  if [ "$command" != up ]; then
    [ -d "$DIR" ] || die "no folder $DIR"
    DIR=$(cd "$DIR" && pwd)
  fi
  case $command in
    up) cmd_up "$nodes" "$port" "$workers" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    start) cmd_start "$part" ;;
    stop) cmd_stop "$part" ;;
  esac
}

main "$@"
