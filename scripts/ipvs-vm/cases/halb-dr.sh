# Direct routing (wrr) programmed by halb: real servers with the VIP on
# loopback answer the client directly; weights 3:1 are honoured.
topo_dr 2
serve 2
mkdir -p /tmp/case
cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"

[[virtual_service]]
name = "web"
listen = "$VIP:80"
scheduler = "wrr"
  [[virtual_service.real_server]]
  address = "192.0.2.21:80"
  weight = 3
  [[virtual_service.real_server]]
  address = "192.0.2.22:80"
  forward = "dr"
CONF
# forward = "dr" is an ipvsadm synonym: check-config must reject it with
# the fix, then accept "route".
halb check-config $HALB_CONF >/tmp/case/cc.out 2>&1 && fail "forward = \"dr\" accepted"
grep -q 'did you mean "route"' /tmp/case/cc.out || fail "no fix for dr: $(cat /tmp/case/cc.out)"
sed -i 's/forward = "dr"/forward = "route"/' $HALB_CONF
halb_start
halb_wait_ipvs "both real servers" "ipvs_table | grep -q '192.0.2.22:80 *Route *1'"
ipvs_table
ipvs_table | grep -q '192.0.2.21:80 *Route *3' || fail "r1 is not Route weight 3"
out=$(gets 8)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1" "$(echo "$out" | count r1)" 6
expect_eq "answers from r2" "$(echo "$out" | count r2)" 2
kill $HALB_PID
