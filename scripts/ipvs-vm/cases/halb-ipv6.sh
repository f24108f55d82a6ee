# IPv6 NAT programmed by halb, with real traffic: client 2001:db8:1::10,
# VIP 2001:db8:1::100, real servers 2001:db8:2::21 and ::22 behind the director.
V6VIP=2001:db8:1::100
bridge6() { # NAME ADDR/PREFIX (no duplicate address detection: usable at once)
  $IP link add "$1" type bridge mcast_snooping 0 stp_state 0 forward_delay 0
  $IP addr add "$2" dev "$1" nodad
  $IP link set "$1" up
}
bridge6 br0 2001:db8:1::1/64
$IP addr add $V6VIP/128 dev br0 nodad
bridge6 br1 2001:db8:2::1/64
sysctl -qw net.ipv6.conf.all.forwarding=1
host6() { # NS BRIDGE ADDR GW
  $IP netns add $1
  $IP link add v$1 type veth peer name eth0 netns $1
  $IP link set v$1 master $2 up
  $IP -n $1 link set lo up
  $IP -n $1 addr add $3/64 dev eth0 nodad
  $IP -n $1 link set eth0 up
  $IP -n $1 -6 route add default via $4
}
host6 c br0 2001:db8:1::10 2001:db8:1::1
host6 r1 br1 2001:db8:2::21 2001:db8:2::1
host6 r2 br1 2001:db8:2::22 2001:db8:2::1
NREAL=2
serve 2
cat > $HALB_CONF <<CONF
[[virtual_service]]
name = "web6"
data_plane = "ipvs"
listen = "[$V6VIP]:80"
scheduler = "rr"
  [[virtual_service.real_server]]
  address = "[2001:db8:2::21]:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "[2001:db8:2::22]:80"
  forward = "masq"
CONF
halb_start
halb_wait_ipvs "the IPv6 service" "ipvs_table | grep -q '\[2001:db8:2::22\]:80 *Masq *1'"
ipvs_table
ipvs_table | grep -q "^TCP  \[$V6VIP\]:80 rr" || fail "no IPv6 rr service"
out=$(gets 4 $V6VIP 80)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1" "$(echo "$out" | count r1)" 2
expect_eq "answers from r2" "$(echo "$out" | count r2)" 2
