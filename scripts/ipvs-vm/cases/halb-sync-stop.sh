# halb stops the sync daemon it started when it exits (SIGTERM), as
# keepalived does: a stopped director must not keep sending sync messages.
topo_nat 1
cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"

[global.ipvs.sync_daemon]
state = "master"
interface = "br0"
sync_id = 52

[[virtual_service]]
listen = "$VIP:80"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
CONF
halb_start
halb_wait_ipvs "the master sync daemon" "ipvsadm -L -n --daemon | grep -q 'master sync daemon.*syncid=52'"
kill $HALB_PID
wait $HALB_PID
halb_wait_ipvs "the master sync daemon stopped at exit" "! ipvsadm -L -n --daemon | grep -q master"
