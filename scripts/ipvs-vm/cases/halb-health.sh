# Health checks drive the kernel's table: a real server whose TCP check
# fails goes to weight 0 in the quiescent service and leaves the table of
# the on_down = "remove" one; when it answers again it comes back.
topo_nat 2
serve 2
mkdir -p /tmp/case
cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"
[global.check]
type = "tcp"
interval = "200ms"
timeout = "1s"
initial = "up"

[[virtual_service]]
name = "quiet"
listen = "$VIP:80"
scheduler = "rr"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"

[[virtual_service]]
name = "gone"
listen = "$VIP:8080"
on_down = "remove"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
CONF
halb_start
halb_wait_ipvs "both real servers up" "[ \$(ipvs_table | grep -c '198.51.100.22:80 *Masq *1') = 2 ]"
ipvs_table
note "stopping r2's server"
for p in $($IP netns pids r2); do kill $p; done
halb_wait_ipvs "r2 quiescent in 'quiet'" "ipvs_table | grep -q '198.51.100.22:80 *Masq *0'"
halb_wait_ipvs "r2 removed from 'gone'" "[ \$(ipvs_table | grep -c '198.51.100.22:80') = 1 ]"
ipvs_table
out=$(gets 4)
expect_eq "answers from r1 while r2 is down" "$(echo "$out" | count r1)" 4
note "starting r2's server again"
nsx r2 nc -ll -p 80 -e /bin/echo r2 &
halb_wait_ipvs "r2 back in both" "[ \$(ipvs_table | grep -c '198.51.100.22:80 *Masq *1') = 2 ]"
ipvs_table
grep -q 'real server 198.51.100.22:80 is down' /tmp/case/halb.log || fail "no health transition logged"
# Health transitions apply from halb's model of the table: the kernel's
# table is read once, at start, not at every transition.
reads=$(grep -c "read the kernel's table" /tmp/case/halb.log)
expect_eq "kernel table reads (start only)" "$reads" 1
kill $HALB_PID
