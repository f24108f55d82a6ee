# Helpers for the guest's case files (sourced before each case; busybox sh).
#
# A case is a shell script that exits 0 when it passed. `fail MSG` ends it
# with "FAIL: MSG" (the first such line is the reason reported to the host).
# The runner resets everything after each case (IPVS table, namespaces,
# links, processes), so a case need not clean up.
#
# The director is the guest's root namespace (ipvsadm and halb run there);
# clients and real servers are namespaces on bridges:
#   topo_nat N  client c 192.0.2.10 on br0 (director 192.0.2.1, VIP 192.0.2.100),
#               real servers r1..rN 198.51.100.21.. on br1 behind the director
#               (198.51.100.1, their default gateway); ip_forward on.
#   topo_dr N   one LAN br0: director 192.0.2.1 with VIP 192.0.2.100, client
#               c 192.0.2.10, real servers r1..rN 192.0.2.21.. with the VIP on
#               their loopback, arp_ignore=1 and arp_announce=2.
# `serve N [PORT]` starts on every real server rK a TCP server that answers
# "rK" (busybox nc -ll -e echo; its pid in $SERVE_PID_K; `serve_one K [PORT]`
# starts one); `get [ADDR] [PORT]` asks once from the client (`get_from NS ...`
# from another namespace).

IP=/usr/sbin/ip # never busybox's ip applet: it has no netns support
VIP=192.0.2.100
CLIENT=192.0.2.10

fail() { echo "FAIL: $*"; exit 1; }
note() { echo "# $*"; }

# run CMD...: print the command, run it, fail the case if it fails.
run() { echo "+ $*"; "$@" || fail "command failed: $*"; }

# nsx NS CMD...: run CMD in namespace NS.
nsx() { local ns=$1; shift; $IP netns exec "$ns" "$@"; }

bridge() { # NAME ADDR/PREFIX
  $IP link add "$1" type bridge mcast_snooping 0 stp_state 0 forward_delay 0
  $IP addr add "$2" dev "$1"
  $IP link set "$1" up
}

host_on() { # NS BRIDGE ADDR/PREFIX [GATEWAY]
  local ns=$1 br=$2 addr=$3 gw=${4:-}
  $IP netns add "$ns"
  $IP link add "v$ns" type veth peer name eth0 netns "$ns"
  $IP link set "v$ns" master "$br" up
  $IP -n "$ns" link set lo up
  $IP -n "$ns" addr add "$addr" dev eth0
  $IP -n "$ns" link set eth0 up
  [ -z "$gw" ] || $IP -n "$ns" route add default via "$gw"
}

real_addr() { # K -> address of real server rK in the current topology
  echo "$REAL_NET.$((20 + $1))"
}

topo_nat() { # N real servers
  local n=${1:-2} k
  bridge br0 192.0.2.1/24
  $IP addr add $VIP/32 dev br0
  bridge br1 198.51.100.1/24
  sysctl -qw net.ipv4.ip_forward=1
  host_on c br0 $CLIENT/24 192.0.2.1
  REAL_NET=198.51.100
  for k in $(seq 1 "$n"); do host_on "r$k" br1 "$(real_addr "$k")/24" 198.51.100.1; done
  NREAL=$n
}

topo_dr() { # N real servers
  local n=${1:-2} k
  bridge br0 192.0.2.1/24
  $IP addr add $VIP/32 dev br0
  host_on c br0 $CLIENT/24
  REAL_NET=192.0.2
  for k in $(seq 1 "$n"); do
    host_on "r$k" br0 "$(real_addr "$k")/24"
    nsx "r$k" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
    $IP -n "r$k" addr add $VIP/32 dev lo
  done
  NREAL=$n
}

serve() { # N [PORT]: real servers r1..rN answer "rK" on PORT (default 80)
  local n=${1:-$NREAL} port=${2:-80} k
  for k in $(seq 1 "$n"); do
    # Not through nsx: a backgrounded function is a subshell, and $! must be nc.
    $IP netns exec "r$k" nc -ll -p "$port" -e /bin/echo "r$k" &
    eval "SERVE_PID_$k=\$!"
  done
  # Wait until each listens.
  for k in $(seq 1 "$n"); do
    wait_for "r$k listening on $port" "nsx r$k netstat -ltn | grep -q ':$port '"
  done
}

serve_one() { # K [PORT]
  $IP netns exec "r$1" nc -ll -p "${2:-80}" -e /bin/echo "r$1" &
  eval "SERVE_PID_$1=\$!"
  wait_for "r$1 listening on ${2:-80}" "nsx r$1 netstat -ltn | grep -q ':${2:-80} '"
}

get() { # [ADDR] [PORT]: one TCP request from the client; prints the answer
  nsx c nc -w 3 "${1:-$VIP}" "${2:-80}" </dev/null 2>/dev/null
}

get_from() { # NS [ADDR] [PORT]
  nsx "$1" nc -w 3 "${2:-$VIP}" "${3:-80}" </dev/null 2>/dev/null
}

# gets N [ADDR] [PORT]: N requests; prints one answer per line ("-" when none)
gets() {
  local i a
  for i in $(seq 1 "$1"); do
    a=$(get "${2:-$VIP}" "${3:-80}")
    echo "${a:--}"
  done
}

# count WORD < lines: how many lines equal WORD
count() { grep -cx "$1" || true; }

# wait_for WHAT CMD [TRIES]: retry the shell command CMD every 0.1 s
wait_for() {
  local i=0 tries=${3:-100}
  while ! eval "$2" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -ge "$tries" ] && fail "timed out waiting for $1"
    sleep 0.1
  done
}

expect_eq() { # WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  echo "ok: $1 = '$2'"
}

# ipvs_table: `ipvsadm -L -n` without its two version/header lines
ipvs_table() { ipvsadm -L -n | tail -n +3; }

# Helpers for halb cases --------------------------------------------------

HALB_CONF=/tmp/case/halb.toml
HALB_SOCK=/run/halb/halb.sock

# halb_start: run halb with $HALB_CONF in the background (log /tmp/case/halb.log)
halb_start() {
  [ -x /usr/sbin/halb ] || fail "no halb binary in the guest"
  halb check-config "$HALB_CONF" || fail "halb check-config rejected $HALB_CONF"
  halb run --config "$HALB_CONF" >/tmp/case/halb.log 2>&1 &
  HALB_PID=$!
  wait_for "halb's control socket" "[ -S $HALB_SOCK ]" 100
}

halb_reload() { run halb reload --socket "$HALB_SOCK"; }

# halb_wait_ipvs WHAT CMD: wait (10 s at most) for halb to program the kernel
halb_wait_ipvs() { wait_for "$1" "$2" 100; }

# Equivalence with the daemons halb replaces (cases import-*) ---------------
#
# A case names its daemon ("# needs: keepalived") and its config ("# import:
# keepalived FILE", imported on the host: /halbvm/import/FILE.toml). It
# defines rs_start K / rs_kill K (start / kill real server rK's servers),
# starts them all, then calls `equiv DAEMON FILE K`: the daemon programs IPVS
# from FILE; its `ipvsadm -S -n` (sorted) is taken once it settles with all
# real servers healthy, and again after rK's servers are killed (once every
# line of rK's has changed: removed or weight 0); the daemon
# stops, the table is cleared, rK starts again; halb runs the imported TOML
# and must reach the same two tables.

IMPORT_DIR=/halbvm/import

# equiv_serve K PORT [HTTP_PORT]: rK answers "rK" on PORT (without nc's
# complaints about the checkers' connections closed early), and serves
# /health ("ok") over HTTP on HTTP_PORT (busybox httpd)
equiv_serve() {
  $IP netns exec "r$1" nc -ll -p "$2" -e /bin/echo "r$1" 2>/dev/null &
  wait_for "r$1 listening on $2" "nsx r$1 netstat -ltn | grep -q ':$2 '"
  [ -n "${3:-}" ] || return 0
  mkdir -p "/tmp/case/www$1"; echo ok > "/tmp/case/www$1/health"
  $IP netns exec "r$1" httpd -f -p "$3" -h "/tmp/case/www$1" &
  wait_for "r$1's HTTP server on $3" "nsx r$1 netstat -ltn | grep -q ':$3 '"
}
rs_kill() { local p; for p in $($IP netns pids "r$1"); do kill "$p"; done; }

ipvs_dump() { ipvsadm -S -n | sort; }

# dump_settled SECONDS: wait until the dump is unchanged for SECONDS (at most
# 60 s), then print it. The daemons' checks run every second in these
# files, so two seconds unchanged is two rounds of checks that changed
# nothing. (A dump taken mid-change cannot make a case pass: halb must
# then reach that very table.)
dump_settled() {
  local want=$(($1 * 10)) same=0 i=0 prev cur
  prev=$(ipvs_dump)
  while [ $same -lt $want ]; do
    sleep 0.1
    cur=$(ipvs_dump)
    if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; prev=$cur; fi
    i=$((i + 1))
    [ $i -lt 600 ] || fail "the IPVS table did not settle in 60 s"
  done
  echo "$prev"
}

# imported FILE: the imported TOML's path (fails the case if the import failed)
imported() {
  local f=$IMPORT_DIR/$1
  note "halb import report for $1 (exit status $(cat $f.rc)):"
  sed 's/^/#   /' "$f.report"
  [ "$(cat $f.rc)" = 0 ] && [ -f "$f.toml" ] || fail "halb import of $1 failed (exit status $(cat $f.rc))"
  echo "$f.toml" > /tmp/case/imported
}

daemon_start() { # DAEMON FILE
  case "$1" in
    keepalived)
      # Checker process only (these files have no vrrp_instance), in the
      # foreground, logging to the console.
      keepalived --dont-fork --log-console --log-detail --no-syslog --check \
        --pid /run/keepalived.pid --checkers_pid /run/keepalived-check.pid \
        --use-file "$IMPORT_DIR/$2" >/tmp/case/daemon.log 2>&1 &
      DAEMON_PID=$! ;;
    ldirectord)
      # ldirectord -d: debug, stays in the foreground.
      perl /usr/sbin/ldirectord -d "$IMPORT_DIR/$2" start >/tmp/case/daemon.log 2>&1 &
      DAEMON_PID=$! ;;
    *) fail "daemon_start: unknown daemon $1" ;;
  esac
}

daemon_stop() {
  kill "$DAEMON_PID" 2>/dev/null
  wait_for "the daemon to exit" "! kill -0 $DAEMON_PID" 150
}

# tnote MSG: a note with the guest's uptime
tnote() { note "[$(cut -d' ' -f1 /proc/uptime)s] $*"; }

show_dump() { # TITLE DUMP
  tnote "$1:"
  echo "$2" | sed 's/^/#   /'
}

# same_table WHAT WANT: wait (30 s at most) until halb's table is WANT;
# on a timeout, fail with both tables
same_table() {
  local i=0 got
  while :; do
    got=$(ipvs_dump)
    [ "$got" = "$2" ] && { show_dump "halb, $1 (equal)" "$got"; return 0; }
    i=$((i + 1))
    if [ $i -ge 300 ]; then
      show_dump "$DAEMON, $1" "$2"
      show_dump "halb, $1" "$got"
      echo "$2" > /tmp/case/want; echo "$got" > /tmp/case/got
      diff /tmp/case/want /tmp/case/got | sed 's/^/#   /'
      fail "halb's table differs from $DAEMON's ($1)"
    fi
    sleep 0.1
  done
}

equiv() { # DAEMON FILE K
  DAEMON=$1
  local file=$2 k=$3 addr healthy degraded
  addr=$(real_addr "$k")
  imported "$file"
  tnote "$DAEMON programs IPVS from $file"
  daemon_start "$DAEMON" "$file"
  wait_for "$DAEMON's services in the table" "[ -n \"\$(ipvsadm -S -n)\" ]" 200
  healthy=$(dump_settled 2)
  show_dump "$DAEMON, all real servers healthy" "$healthy"
  echo "$healthy" | grep -q -- "-r $addr:" || fail "$DAEMON's table has no real server $addr"
  tnote "killing r$k's servers"
  echo "$healthy" | grep -- "-r $addr:" > /tmp/case/r-lines
  rs_kill "$k"
  # Every line of rK's in the healthy table changes (removed, or weight 0).
  wait_for "$DAEMON to see r$k down" "! ipvs_dump | grep -qxF -f /tmp/case/r-lines" 600
  degraded=$(dump_settled 2)
  show_dump "$DAEMON, r$k down" "$degraded"
  [ "$degraded" != "$healthy" ] || fail "$DAEMON's table did not change with r$k down"
  daemon_stop
  note "$DAEMON's table after it stopped:"; ipvs_dump | sed 's/^/#   /'
  ipvsadm -C
  rs_start "$k"
  HALB_CONF=$(cat /tmp/case/imported)
  tnote "halb programs IPVS from the imported $HALB_CONF"
  halb_start
  same_table "all real servers healthy" "$healthy"
  rs_kill "$k"
  same_table "r$k down" "$degraded"
  kill $HALB_PID
}
