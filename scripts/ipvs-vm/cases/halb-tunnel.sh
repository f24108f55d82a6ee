# IP tunnelling programmed by halb: three real servers reached through an
# IPIP, a GUE (with UDP checksums, tunnel_checksum = "csum") and a GRE tunnel
# (forward = "tunnel", tunnel_type), each with
# the VIP on its loopback, answering the client directly.
topo_dr 3
# r1 decapsulates IPIP on tunl0, r2 GUE on UDP 6080 (fou, then tunl0), r3 GRE on gre0.
run $IP -n r1 link set tunl0 up
run $IP -n r2 link set tunl0 up
run $IP -n r2 fou add port 6080 gue
run $IP -n r3 link set gre0 up
for k in 1 2 3; do
  nsx r$k sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  for d in tunl0 gre0; do nsx r$k sysctl -qw net.ipv4.conf.$d.rp_filter=0 2>/dev/null; done
done
serve 3
cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"

[[virtual_service]]
name = "tunnelled"
listen = "$VIP:80"
scheduler = "rr"
  [[virtual_service.real_server]]
  address = "192.0.2.21:80"
  forward = "tunnel"
  [[virtual_service.real_server]]
  address = "192.0.2.22:80"
  forward = "tunnel"
  tunnel_type = "gue"
  tunnel_port = 6080
  tunnel_checksum = "csum"
  [[virtual_service.real_server]]
  address = "192.0.2.23:80"
  forward = "tunnel"
  tunnel_type = "gre"
CONF
halb_start
halb_wait_ipvs "three tunnel real servers" "[ \$(ipvs_table | grep -c 'Tunnel *1') = 3 ]"
ipvs_table
halb list
ipvsadm -L -n --tun-info | tee /tmp/case/tun
# ipvsadm --tun-info: TYPE[:PORT]:FLAGS, "+c" csum, "-c" nocsum, "+r" remcsum.
grep '192.0.2.22:80' /tmp/case/tun | grep -q 'gue:6080:+c' ||
  fail "the GUE real server's checksum flag (csum, +c) is not in ipvsadm --tun-info"
grep '192.0.2.23:80' /tmp/case/tun | grep -q 'gre:-c' ||
  fail "the GRE real server is not gre without checksum (-c) in ipvsadm --tun-info"
[ "$(halb list | grep -c 'Tunnel')" = 3 ] || fail "halb list does not show 3 Tunnel real servers"
out=$(gets 9)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1 (ipip)" "$(echo "$out" | count r1)" 3
expect_eq "answers from r2 (gue)" "$(echo "$out" | count r2)" 3
expect_eq "answers from r3 (gre)" "$(echo "$out" | count r3)" 3
