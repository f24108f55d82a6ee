# Direct routing with ipvsadm only: real servers on the director's LAN with
# the VIP on their loopback (arp_ignore=1, arp_announce=2); the director
# rewrites MAC addresses and the real servers answer the client directly.
topo_dr 2
serve 2
run ipvsadm -A -t $VIP:80 -s rr
run ipvsadm -a -t $VIP:80 -r 192.0.2.21:80 -g
run ipvsadm -a -t $VIP:80 -r 192.0.2.22:80 -g
ipvs_table
ipvs_table | grep -q '192.0.2.21:80 *Route *1' || fail "r1 is not Route weight 1 in ipvsadm -L -n"
out=$(gets 10)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1" "$(echo "$out" | count r1)" 5
expect_eq "answers from r2" "$(echo "$out" | count r2)" 5
# The client resolved the VIP to the director's MAC, not a real server's.
dmac=$($IP link show br0 | awk '/link\/ether/ {print $2}')
cmac=$(nsx c $IP neigh show $VIP | awk '{print $5}')
expect_eq "client's MAC for the VIP" "$cmac" "$dmac"
# Replies bypass the director: it forwarded nothing back (ip_forward is off).
expect_eq "ip_forward on the director" "$(cat /proc/sys/net/ipv4/ip_forward)" 0
