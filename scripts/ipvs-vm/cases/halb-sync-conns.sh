# Connection sync between two directors: halb starts the kernel's sync
# daemon as master on this director and, in a second director (namespace d2,
# its own IPVS table, its own halb), as backup; connections made through the
# master appear in the backup's table. (halb-sync: start, switch, stop.)
topo_nat 2
host_on d2 br0 192.0.2.2/24
serve 2
conf() { # STATE INTERFACE SOCKET
  cat <<CONF
[global]
data_plane = "ipvs"
control_socket = "$3"

[global.ipvs.sync_daemon]
state = "$1"
interface = "$2"
sync_id = 51

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
conf master br0 $HALB_SOCK > $HALB_CONF
conf backup eth0 /run/halb/d2.sock > /tmp/case/d2.toml
halb_start
nsx d2 halb run --config /tmp/case/d2.toml >/tmp/case/d2.log 2>&1 &
wait_for "the backup's control socket" "[ -S /run/halb/d2.sock ]"
halb_wait_ipvs "the master sync daemon" "ipvsadm -L -n --daemon | grep -q 'master sync daemon.*br0.*syncid=51'"
halb_wait_ipvs "the backup sync daemon" "nsx d2 ipvsadm -L -n --daemon | grep -q 'backup sync daemon.*eth0.*syncid=51'"
ipvsadm -L -n --daemon
nsx d2 ipvsadm -L -n --daemon
out=$(gets 4)
expect_eq "answered requests" "$(echo "$out" | grep -c '^r')" 4
halb_wait_ipvs "connections synced to the backup" "nsx d2 ipvsadm -L -n -c | grep -q '192.0.2.10:.*$VIP:80'"
nsx d2 ipvsadm -L -n -c
