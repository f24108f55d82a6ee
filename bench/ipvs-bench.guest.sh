# Guest side of bench/ipvs-bench: runs as /halbvm/main.sh in the IPVS VM
# (scripts/ipvs-vm-test --guest-main). Parameters come from
# /halbvm/extra/ipvs-bench.params: N services, R real servers each, SAMPLE
# services programmed by the ipvsadm shell loop (the rest of the loop's time
# is extrapolated), CHANGE_EVERY (every CHANGE_EVERY-th real server gets a new
# weight), HALB (1 to measure halb).
#
# Prints "HALBVM RESULT <key> <value>" lines; every table is checked against
# the one `ipvsadm -R` produced (same services, schedulers, real servers,
# forwarding methods and weights) and a mismatch fails the run.
. /halbvm/extra/ipvs-bench.params
W=/tmp/bench
mkdir -p $W
fails=0

res() { echo "HALBVM RESULT $*"; }
say() { echo "HALBVM NOTE $*"; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'; }
# A sleep without a fork (busybox ash's read -t takes fractions).
mkfifo $W/never
nap() { read -r -t "$1" _ <>$W/never; }

# The kernel's table in a canonical form: "service scheduler dest forward weight".
canon() {
  awk '$1 == "TCP" || $1 == "UDP" || $1 == "FWM" {s = $1 " " $2 " " $3; next}
       $1 == "->" && $2 ~ /^[0-9A-F[]/ {print s, $2, $3, $4}' /proc/net/ip_vs | sort | md5sum | cut -d' ' -f1
}
dests() { grep -c '^  -> [0-9A-F[]' /proc/net/ip_vs; }

# A fresh IPVS for each method: `ipvsadm -C` leaves every removed real server
# in the kernel's trash list, which each later add walks (quadratic), so the
# method measured after a flush would pay for the one before it. Unloading
# and loading the modules empties the trash.
fresh_ipvs() {
  ipvsadm -C
  for m in $(grep '^ip_vs' /etc/halbvm/modules | sed '1!G;h;$!d'); do
    rmmod "$m" 2>/dev/null || say "could not unload $m"
  done
  for m in $(awk 'NR == FNR {have[$1] = 1; next} !($1 in have)' /proc/modules /etc/halbvm/modules); do
    insmod "/lib/modules/$m.ko" || echo "HALBVM BENCH-MISMATCH could not load $m"
  done
}

# kernel_s WHAT: the last "WHAT ... in N ms" of halb's log, in seconds
# (halb's own time talking to the kernel, without reading the config).
kernel_s() {
  grep "$1" $W/halb.log | tail -n 1 | sed -n 's/.* in \([0-9.]*\) ms.*/\1/p' |
    awk '{printf "%.3f", $1 / 1000}'
}

# How many table checks halb has logged; wait_check N: until there are more
# than N (a reload's check follows its answer), 10 minutes at most.
checks_logged() { grep -c "checked the kernel's table" $W/halb.log; }
wait_check() {
  local i=0
  while [ "$(checks_logged)" -le "$1" ] && [ $i -lt 120000 ]; do nap 0.005; i=$((i + 1)); done
  [ "$(checks_logged)" -gt "$1" ] || { echo "HALBVM BENCH-MISMATCH halb logged no table check after the reload"; fails=$((fails + 1)); return 1; }
}

check() { # WHAT WANT
  local got
  got=$(canon)
  if [ "$got" = "$2" ]; then
    say "$1: table verified ($(dests) real servers)"
  else
    echo "HALBVM BENCH-MISMATCH $1: the kernel's table differs from ipvsadm -R's ($(dests) real servers)"
    fails=$((fails + 1))
  fi
}

# --- the tables, as ipvsadm -R input and as halb configs ------------------------
# Service i: 203.0.113.(1 + i/1000):(10000 + i%1000), wlc; real server k of it:
# 198.51.100.(1 + (i + k) % 250):80, masquerading, weight 1 + (i + k) % 5;
# the changed ones get 100 more.
awk -v N="$N" -v R="$R" -v S="$SAMPLE" -v E="$CHANGE_EVERY" -v W="$W" 'BEGIN {
  ctl = "\n[global]\ncontrol_socket = \"/run/halb/halb.sock\"\n"
  print ctl > (W "/halb.toml"); print ctl > (W "/halb-changed.toml")
  for (i = 0; i < N; i++) {
    svc = sprintf("203.0.113.%d:%d", 1 + int(i / 1000), 10000 + i % 1000)
    out = (i < N - S) ? (W "/base.rules") : (W "/sample.rules")
    line = "-A -t " svc " -s wlc"
    print line > (W "/full.rules"); print line > out
    if (i >= N - S) print "-D -t " svc > (W "/unsample.rules")
    h = "[[virtual_service]]\nlisten = \"" svc "\"\ndata_plane = \"ipvs\"\nscheduler = \"wlc\"\nreal_server = ["
    printf "%s", h > (W "/halb.toml"); printf "%s", h > (W "/halb-changed.toml")
    for (k = 1; k <= R; k++) {
      rs = sprintf("198.51.100.%d:80", 1 + (i + k) % 250)
      w = 1 + (i + k) % 5
      nw = w
      if ((i * R + k - 1) % E == 0) {
        nw = w + 100
        print "-e -t " svc " -r " rs " -m -w " nw > (W "/change.rules")
        print "-e -t " svc " -r " rs " -m -w " w > (W "/revert.rules")
      }
      line = "-a -t " svc " -r " rs " -m -w " w
      print line > (W "/full.rules"); print line > out
      sep = (k < R) ? "," : ""
      printf " { address = \"%s\", forward = \"masq\", weight = %d }%s", rs, w, sep > (W "/halb.toml")
      printf " { address = \"%s\", forward = \"masq\", weight = %d }%s", rs, nw, sep > (W "/halb-changed.toml")
    }
    print " ]\n" > (W "/halb.toml"); print " ]\n" > (W "/halb-changed.toml")
  }
}'
: >>$W/base.rules
lines=$(grep -c . $W/full.rules)
sample_lines=$(grep -c . $W/sample.rules)
changes=$(grep -c . $W/change.rules)
res services "$N"
res real_servers "$((N * R))"
res rules "$lines"
res changed_weights "$changes"
res sample_rules "$sample_lines"

# --- ipvsadm -R (restore): the reference -----------------------------------------
fresh_ipvs
t=$(now); ipvsadm -R <$W/full.rules; res restore_full_s "$(since "$t")"
FULL=$(canon)
[ "$(dests)" = "$((N * R))" ] || { echo "HALBVM BENCH-MISMATCH ipvsadm -R programmed $(dests) real servers, not $((N * R))"; fails=$((fails + 1)); }
t=$(now); ipvsadm -R <$W/change.rules; res restore_change_s "$(since "$t")"
CHANGED=$(canon)
[ "$FULL" != "$CHANGED" ] || { echo "HALBVM BENCH-MISMATCH the weight change changed nothing"; fails=$((fails + 1)); }

# --- a shell loop of ipvsadm commands ----------------------------------------------
# The full table without the sample's services (untimed, on a fresh IPVS),
# then the loop adds the sample; its time per command gives the full
# table's time.
fresh_ipvs
ipvsadm -R <$W/base.rules
t=$(now)
while read -r l; do ipvsadm $l; done <$W/sample.rules
el=$(since "$t")
res loop_sample_s "$el"
res loop_full_s "$(awk -v e="$el" -v s="$sample_lines" -v l="$lines" 'BEGIN {printf "%.3f", e * l / s}')"
check "shell loop, full table" "$FULL"
t=$(now)
while read -r l; do ipvsadm $l; done <$W/change.rules
res loop_change_s "$(since "$t")"
check "shell loop, weight change" "$CHANGED"

# --- halb ---------------------------------------------------------------------------
if [ "$HALB" = 1 ]; then
  fresh_ipvs
  # Reading and checking the config alone (part of every start and reload).
  t=$(now)
  halb check-config $W/halb.toml >$W/check.log 2>&1 || { cat $W/check.log; echo "HALBVM BENCH-MISMATCH halb check-config rejected the generated config"; exit 1; }
  res halb_check_config_s "$(since "$t")"
  # From exec until the control socket listens: halb binds it after the
  # whole table is applied.
  t=$(now)
  halb run --config $W/halb.toml >$W/halb.log 2>&1 &
  pid=$!
  i=0
  while [ ! -S /run/halb/halb.sock ] && kill -0 $pid 2>/dev/null && [ $i -lt 360000 ]; do nap 0.005; i=$((i + 1)); done
  res halb_full_s "$(since "$t")"
  if ! kill -0 $pid 2>/dev/null; then
    tail -n 20 $W/halb.log
    echo "HALBVM BENCH-MISMATCH halb exited while programming the table"
    exit 1
  fi
  check "halb, full table" "$FULL"
  res halb_full_kernel_s "$(kernel_s 'sent to the kernel')"
  cp $W/halb-changed.toml $W/halb.toml
  # `halb reload` answers after the changes are sent to the kernel; the
  # check of the kernel's table follows the answer.
  checked=$(checks_logged)
  t=$(now); halb reload >$W/reload.log 2>&1; rc=$?; res halb_change_s "$(since "$t")"
  [ $rc = 0 ] || { cat $W/reload.log; echo "HALBVM BENCH-MISMATCH halb reload failed"; fails=$((fails + 1)); }
  check "halb, weight change" "$CHANGED"
  res halb_change_kernel_s "$(kernel_s 'sent to the kernel')"
  wait_check "$checked" && res halb_change_read_s "$(kernel_s "checked the kernel's table")"
  checked=$(checks_logged)
  t=$(now); halb reload >$W/reload.log 2>&1; res halb_noop_s "$(since "$t")"
  check "halb, same config again" "$CHANGED"
  wait_check "$checked" && res halb_noop_read_s "$(kernel_s "checked the kernel's table")"
  kill $pid; wait $pid
  tail -n 5 $W/halb.log | sed 's/^/HALBVM NOTE halb: /'
fi
[ $fails = 0 ]
