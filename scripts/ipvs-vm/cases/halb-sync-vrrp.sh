# The sync daemon follows the VRRP role (keepalived's lvs_sync_daemon):
# two directors, this one (br0, priority 150) and d2 (priority 100), in one
# virtual router; the master's halb runs the master sync daemon, the
# backup's the backup daemon, so connections made through the master are
# in the backup's table; when the master dies the backup takes the VRRP
# address and its sync daemon becomes master.
topo_nat 2
host_on d2 br0 192.0.2.2/24
serve 2
conf() { # INTERFACE SOCKET PRIORITY
  cat <<CONF
[global]
data_plane = "ipvs"
control_socket = "$2"

[global.ipvs.sync_daemon]
vrrp_instance = "VI_1"
interface = "$1"
sync_id = 53

[[vrrp_instance]]
name = "VI_1"
interface = "$1"
virtual_router_id = 53
priority = $3
advert_interval = "100ms"
virtual_ipaddress = ["192.0.2.250/24"]

[[virtual_service]]
name = "web"
listen = "$VIP:80"
scheduler = "rr"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
CONF
}
conf br0 $HALB_SOCK 150 > $HALB_CONF
conf eth0 /run/halb/d2.sock 100 > /tmp/case/d2.toml
halb check-config /tmp/case/d2.toml || fail "halb check-config rejected the backup's config"
# Not through nsx: a backgrounded function is a subshell, and $! must be halb.
$IP netns exec d2 halb run --config /tmp/case/d2.toml >/tmp/case/d2.log 2>&1 &
D2_PID=$!
wait_for "the backup's control socket" "[ -S /run/halb/d2.sock ]"
halb_start
halb_wait_ipvs "this director VRRP master" "ip -o addr show dev br0 | grep -q 192.0.2.250/24"
halb_wait_ipvs "the master sync daemon here" "ipvsadm -L -n --daemon | grep -q 'master sync daemon.*br0.*syncid=53'"
halb_wait_ipvs "the backup sync daemon in d2" "nsx d2 ipvsadm -L -n --daemon | grep -q 'backup sync daemon.*eth0.*syncid=53'"
ipvsadm -L -n --daemon
nsx d2 ipvsadm -L -n --daemon
nsx d2 ipvsadm -L -n --daemon | grep -q master && fail "d2 runs a master sync daemon while it is VRRP backup"
ipvsadm -L -n --daemon | grep -q backup && fail "this director runs a backup sync daemon while it is VRRP master"
out=$(gets 4)
expect_eq "answered requests" "$(echo "$out" | grep -c '^r')" 4
halb_wait_ipvs "connections synced to the backup" "nsx d2 ipvsadm -L -n -c | grep -q '192.0.2.10:.*$VIP:80'"
# The master dies: d2 takes the address and its sync daemon becomes master.
kill $HALB_PID
wait $HALB_PID
halb_wait_ipvs "d2 VRRP master" "nsx d2 ip -o addr show dev eth0 | grep -q 192.0.2.250/24"
halb_wait_ipvs "d2's sync daemon master" "nsx d2 ipvsadm -L -n --daemon | grep -q 'master sync daemon.*eth0.*syncid=53'"
nsx d2 ipvsadm -L -n --daemon
nsx d2 ipvsadm -L -n --daemon | grep -q backup && fail "d2 kept its backup sync daemon as VRRP master"
grep -q "sync daemon becomes Master" /tmp/case/d2.log || fail "d2 did not log the switch: $(tail -n 20 /tmp/case/d2.log)"
kill $D2_PID
wait $D2_PID
halb_wait_ipvs "d2's sync daemon stopped at exit" "! nsx d2 ipvsadm -L -n --daemon | grep -q daemon"
