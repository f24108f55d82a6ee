# The kernel's connection-sync daemon, started, switched and stopped by
# halb from [global.ipvs.sync_daemon] (ipvsadm --start-daemon equivalent).
topo_nat 1
mkdir -p /tmp/case
conf() { # STATE (empty: no sync daemon) [EXTRA KEYS]
  cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"
CONF
  [ -z "$1" ] || cat >> $HALB_CONF <<CONF
[global.ipvs.sync_daemon]
state = "$1"
interface = "br0"
sync_id = 51
${2:-}
CONF
  cat >> $HALB_CONF <<CONF

[[virtual_service]]
listen = "$VIP:80"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
CONF
}
conf master
halb_start
sleep 1
cat /tmp/case/halb.log
halb_wait_ipvs "master sync daemon" "ipvsadm -L --daemon | grep -q 'master sync daemon (mcast=br0, syncid=51'"
ipvsadm -L --daemon
conf backup
halb_reload
halb_wait_ipvs "backup sync daemon" "ipvsadm -L --daemon | grep -q 'backup sync daemon (mcast=br0, syncid=51'"
ipvsadm -L --daemon | grep -q master && fail "the master daemon was not stopped"
# Group, port, TTL and message size as configured (ipvsadm
# --mcast-group/-port/-ttl, --sync-maxlen).
conf master 'group = "239.1.2.3"
port = 8850
ttl = 4
max_len = 1200'
halb_reload
halb_wait_ipvs "master sync daemon with its group, port, TTL and maxlen" \
  "ipvsadm -L --daemon | grep 'master sync daemon (mcast=br0, syncid=51' | grep 'maxlen=1200' | grep 'group=239.1.2.3' | grep 'port=8850' | grep -q 'ttl=4'"
ipvsadm -L --daemon
ipvsadm -L --daemon | grep -q backup && fail "the backup daemon was not stopped"
conf ""
halb_reload
halb_wait_ipvs "no sync daemon" "[ -z \"\$(ipvsadm -L --daemon)\" ]"
kill $HALB_PID
