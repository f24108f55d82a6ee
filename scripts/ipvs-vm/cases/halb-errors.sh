# A kernel refusal names the virtual service and the real server, and the
# rest of the table is still programmed: a route real server of another
# address family than its firewall-mark service (the kernel takes mixed
# families only through tunnels).
topo_nat 1
mkdir -p /tmp/case
cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"

[[virtual_service]]
name = "marked"
fwmark = 9
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  [[virtual_service.real_server]]
  address = "[2001:db8:1::21]:80"

[[virtual_service]]
name = "web"
listen = "$VIP:80"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
CONF
halb_start
halb_wait_ipvs "web programmed" "ipvs_table | grep -q '198.51.100.21:80 *Masq'"
ipvs_table
cat /tmp/case/halb.log
grep -q 'virtual service marked: (FWM 9) real server \[2001:db8:1::21\]:80: kernel refused' /tmp/case/halb.log \
  || fail "the refusal does not name the service and real server"
ipvs_table | grep -q '^FWM  9' || fail "the service itself is missing"
ipvs_table | grep -q '198.51.100.21:80 *Route' || fail "the other real server of the service is missing"
kill -0 $HALB_PID || fail "halb exited"
kill $HALB_PID
