# Persistence programmed by halb (NAT, rr, timeout 300 s, netmask /24): every
# connection from one client, and from a second client of the same /24,
# reaches the same real server; the kernel holds a persistence template;
# a reload without persistence brings round robin back.
topo_nat 2
host_on c2 br0 192.0.2.11/24 192.0.2.1
serve 2
conf() { # PERSISTENCE-LINE
  cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"

[[virtual_service]]
name = "sticky"
listen = "$VIP:80"
scheduler = "rr"
$1
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
CONF
}
conf 'persistence = { timeout = "300s", netmask = 24 }'
halb_start
halb_wait_ipvs "the persistent service" "ipvs_table | grep -q '198.51.100.22:80 *Masq *1'"
ipvs_table
ipvs_table | grep -q "^TCP  $VIP:80 rr persistent 300 mask 255.255.255.0\$" || fail "service is not 'rr persistent 300 mask 255.255.255.0'"
out=$(gets 6)
echo "$out" | tr '\n' ' '; echo
first=$(echo "$out" | head -n1)
case "$first" in r1|r2) ;; *) fail "no answer through the VIP: '$first'" ;; esac
expect_eq "answers from $first (one client)" "$(echo "$out" | count "$first")" 6
out2=$(for i in 1 2 3 4; do a=$(get_from c2); echo "${a:--}"; done)
expect_eq "answers from $first (second client, same /24)" "$(echo "$out2" | count "$first")" 4
ipvsadm -L -n -c
ipvsadm -L -n -c | grep -q " 192.0.2.0:0 *$VIP:80 " || fail "no persistence template 192.0.2.0:0 -> $VIP:80 in ipvsadm -L -n -c"
halb list --connections
halb list --connections | grep -q "192.0.2.0:0" || fail "halb list --connections lacks the persistence template"
# Without persistence: round robin again.
conf ''
halb_reload
halb_wait_ipvs "persistence off" "ipvs_table | grep -q '^TCP  $VIP:80 rr\$'"
out=$(gets 4)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1 without persistence" "$(echo "$out" | count r1)" 2
expect_eq "answers from r2 without persistence" "$(echo "$out" | count r2)" 2
