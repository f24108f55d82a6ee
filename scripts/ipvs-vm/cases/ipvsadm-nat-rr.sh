# NAT (masquerading) round-robin with ipvsadm only: real traffic from the
# client namespace through the director to two real servers behind it.
topo_nat 2
serve 2
run ipvsadm -A -t $VIP:80 -s rr
run ipvsadm -a -t $VIP:80 -r 198.51.100.21:80 -m
run ipvsadm -a -t $VIP:80 -r 198.51.100.22:80 -m
# The kernel may reuse a destination of an earlier case from its trash,
# counters and all (summed late by the estimator): count from what it
# shows now, and accept more.
conns() { ipvsadm -L -n --stats | awk -v r="$1" '$2 == r {print $3}'; }
base1=$(conns 198.51.100.21:80); base2=$(conns 198.51.100.22:80)
ipvs_table
ipvs_table | grep -q '198.51.100.21:80 *Masq *1' || fail "r1 is not Masq weight 1 in ipvsadm -L -n"
out=$(gets 10)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1" "$(echo "$out" | count r1)" 5
expect_eq "answers from r2" "$(echo "$out" | count r2)" 5
# Each real server saw 5 connections (the counters lag a few seconds).
wait_for "5 connections to r1 in --stats" '[ "$(conns 198.51.100.21:80)" -ge $((base1 + 5)) ]' 150
wait_for "5 connections to r2 in --stats" '[ "$(conns 198.51.100.22:80)" -ge $((base2 + 5)) ]' 150
ipvsadm -L -n --stats
