# Adoption and reconciliation: a table made by ipvsadm before halb starts
# is adopted (the managed service) or left alone (a foreign one); a change
# made behind halb's back is undone at the next apply; every scheduler and
# service option halb knows is programmed and read back.
topo_nat 2
mkdir -p /tmp/case
run ipvsadm -A -t $VIP:80 -s wlc
run ipvsadm -a -t $VIP:80 -r 198.51.100.21:80 -m -w 1
run ipvsadm -a -t $VIP:80 -r 198.51.100.29:80 -m -w 1
run ipvsadm -A -t $VIP:22 -s rr
run ipvsadm -a -t $VIP:22 -r 198.51.100.21:22 -m -w 1
{
cat <<CONF
[global]
data_plane = "ipvs"

[[virtual_service]]
name = "web"
listen = "$VIP:80"
scheduler = "wlc"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
  upper_threshold = 100
  lower_threshold = 50

[[virtual_service]]
name = "dns"
listen = "$VIP:53"
protocol = "udp"
scheduler = "rr"
one_packet = true
  [[virtual_service.real_server]]
  address = "198.51.100.21:53"
  forward = "masq"

[[virtual_service]]
name = "marked"
fwmark = 7
scheduler = "sh"
scheduler_flags = ["fallback", "port"]
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"

[[virtual_service]]
name = "sticky"
listen = "$VIP:443"
scheduler = "mh"
scheduler_flags = ["port"]
persistence = { timeout = "600s", netmask = 24 }
  [[virtual_service.real_server]]
  address = "198.51.100.21:443"
  forward = "tunnel"

[[virtual_service]]
name = "diameter"
listen = "$VIP:3868"
protocol = "sctp"
scheduler = "rr"
  [[virtual_service.real_server]]
  address = "198.51.100.21:3868"
  forward = "masq"

[[virtual_service]]
name = "v6"
listen = "[2001:db8::100]:80"
persistence = { timeout = "60s", prefix_v6 = 64 }
  [[virtual_service.real_server]]
  address = "[2001:db8:1::21]:80"
  [[virtual_service.real_server]]
  address = "[2001:db8:1::22]:80"
  forward = "tunnel"
  tunnel_type = "gue"
  tunnel_port = 6080
CONF
port=9000
for s in rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh; do
  port=$((port + 1))
  printf '\n[[virtual_service]]\nlisten = "%s:%s"\nscheduler = "%s"\n  [[virtual_service.real_server]]\n  address = "198.51.100.22:80"\n  forward = "masq"\n  weight = 2\n' $VIP $port $s
done
} > $HALB_CONF
halb_start
halb_wait_ipvs "r2 added to the adopted service" "ipvs_table | grep -q '198.51.100.22:80 *Masq *1'"
ipvsadm -L -n
ipvs_table | grep -q '198.51.100.29:80' && fail "halb kept a real server of an adopted service that the config lacks"
ipvs_table | grep -q "^TCP  $VIP:22 rr" || fail "the foreign service was touched"
grep -q "TCP $VIP:22 is in the kernel but not in the config" /tmp/case/halb.log || fail "foreign service not reported: $(cat /tmp/case/halb.log)"
ipvs_table | grep -q "^UDP  $VIP:53 rr ops" || fail "one-packet udp service missing"
ipvs_table | grep -q "^FWM  7 sh (sh-fallback,sh-port)" || fail "fwmark sh service with flags missing"
ipvs_table | grep -q "^TCP  $VIP:443 mh (mh-port) persistent 600 mask 255.255.255.0" || fail "persistent mh service missing"
ipvs_table | grep -q '198.51.100.21:443 *Tunnel' || fail "tunnel real server missing"
ipvsadm -L -n --thresholds | grep -q '198.51.100.22:80 .*100 *50' || fail "thresholds missing: $(ipvsadm -L -n --thresholds)"
ipvs_table | grep -q "^SCTP *$VIP:3868 rr" || fail "sctp service missing"
ipvs_table | grep -q '^TCP  \[2001:db8::100\]:80 wlc persistent 60 mask 64' || fail "IPv6 persistent service missing"
ipvs_table | grep -q '\[2001:db8:1::22\]:80 *Tunnel *1' || fail "IPv6 tunnel real server missing"
ipvsadm -L -n --tun-info 2>&1 | tee /tmp/case/tun
grep -i '2001:db8:1::22.*gue.*6080' /tmp/case/tun || fail "GUE tunnel type and port not in ipvsadm --tun-info"
port=9000
for s in rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh; do
  port=$((port + 1))
  ipvs_table | grep -q "^TCP  $VIP:$port $s" || fail "service $VIP:$port has no scheduler $s"
done
# Changes behind halb's back are undone at the next reload, which reads
# back only what /proc/net/ip_vs shows as changed: the two services touched.
run ipvsadm -e -t $VIP:80 -r 198.51.100.21:80 -m -w 9
run ipvsadm -a -t $VIP:9001 -r 198.51.100.29:80 -m -w 1
halb_reload
halb_wait_ipvs "weight restored" "ipvs_table | grep -q '198.51.100.21:80 *Masq *1'"
halb_wait_ipvs "foreign real server removed" "! ipvs_table | grep -q '198.51.100.29:80'"
grep "checked the kernel's table" /tmp/case/halb.log
grep -q "checked the kernel's table (.* services; 2 re-read)" /tmp/case/halb.log || fail "the reload did not re-read exactly the 2 changed services: $(grep ipvs: /tmp/case/halb.log | tail -5)"
ipvs_table | grep -q "^TCP  $VIP:22 rr" || fail "the foreign service was touched by the reload"
kill $HALB_PID
