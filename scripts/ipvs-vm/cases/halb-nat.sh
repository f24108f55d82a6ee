# halb programs IPVS (NAT, rr) from its config over netlink; real traffic
# flows; a reload changes a weight to 0 (quiescent) and then removes a real
# server, each as one edit seen in ipvsadm -L -n; halb list shows the
# kernel's table in the ipvsadm layout.
topo_nat 2
serve 2
mkdir -p /tmp/case
conf() { # WEIGHT2 [NO_R2]
  cat > $HALB_CONF <<CONF
[global.ipvs]
timeout_tcp = "900s"
timeout_tcpfin = "120s"
timeout_udp = "300s"

[[virtual_service]]
name = "web"
data_plane = "ipvs"
listen = "$VIP:80"
scheduler = "rr"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
CONF
  [ -n "${2:-}" ] || cat >> $HALB_CONF <<CONF
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
  weight = $1
CONF
}
conf 1
halb_start
halb_wait_ipvs "r2 in the kernel" "ipvs_table | grep -q '198.51.100.22:80 *Masq *1'"
ipvs_table
ipvs_table | grep -q "^TCP  $VIP:80 rr\$" || fail "service not rr"
ipvs_table | grep -q '198.51.100.21:80 *Masq *1' || fail "r1 is not Masq weight 1"
ipvsadm -L -n --timeout | grep -q 'Timeout (tcp tcpfin udp): 900 120 300' || fail "timeouts not set: $(ipvsadm -L -n --timeout)"
halb list --timeout | grep -qx 'Timeout (tcp tcpfin udp): 900 120 300' || fail "halb list --timeout: $(halb list --timeout 2>&1)"
out=$(gets 10)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1" "$(echo "$out" | count r1)" 5
expect_eq "answers from r2" "$(echo "$out" | count r2)" 5
halb list || fail "halb list failed"
halb list | grep -q '198.51.100.22:80 *Masq *1' || fail "halb list lacks r2 Masq 1"
# halb reads the counters back: the same as ipvsadm's (the kernel may
# reuse a destination of an earlier case from its trash, counters and all,
# so compare rather than expect 5).
conns() { $1 --stats | awk -v r=198.51.100.21:80 '$2 == r {print $3}'; }
wait_for "r1's 5 connections counted" '[ "$(conns "ipvsadm -L -n")" -ge 5 ]' 150
expect_eq "r1 connections in halb list --stats" "$(conns "halb list")" "$(conns "ipvsadm -L -n")"
halb list --stats
halb list --rate || fail "halb list --rate failed"
halb list --connections | tee /tmp/case/conns
grep -q '198.51.100.21:80' /tmp/case/conns || fail "halb list --connections shows no connection to r1"
# The same state again sends nothing.
n=$(grep -c 'change(s) sent' /tmp/case/halb.log)
halb_reload
expect_eq "changes sent by a reload that changes nothing" "$(grep -c 'change(s) sent' /tmp/case/halb.log)" "$n"
# Quiescent: weight 0, no new connections to r2.
conf 0
halb_reload
halb_wait_ipvs "r2 quiescent" "ipvs_table | grep -q '198.51.100.22:80 *Masq *0'"
out=$(gets 6)
expect_eq "answers from r2 while quiescent" "$(echo "$out" | count r2)" 0
expect_eq "answers from r1 while r2 quiescent" "$(echo "$out" | count r1)" 6
# Removal.
conf 1 no-r2
halb_reload
halb_wait_ipvs "r2 removed" "! ipvs_table | grep -q '198.51.100.22:80'"
ipvs_table
kill $HALB_PID
