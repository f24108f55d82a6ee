# The guest kernel has IPVS and every scheduler module: ipvsadm creates one
# virtual service per scheduler and /proc/net/ip_vs lists them all.
[ -r /proc/net/ip_vs ] || fail "/proc/net/ip_vs is missing: ip_vs did not load"
port=8000
for s in rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh; do
  port=$((port + 1))
  run ipvsadm -A -t $VIP:$port -s $s
  run ipvsadm -a -t $VIP:$port -r 198.51.100.21:80 -m -w 2
done
ipvs_table
expect_eq "services in ipvsadm -L -n" "$(ipvs_table | grep -c '^TCP')" 13
expect_eq "services in /proc/net/ip_vs" "$(grep -c '^TCP' /proc/net/ip_vs)" 13
port=8000
for s in rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh; do
  port=$((port + 1))
  ipvs_table | grep -q "^TCP  $VIP:$port $s\$" || fail "service $VIP:$port has no scheduler $s"
done
# /proc/net/ip_vs shows addresses in hex: 192.0.2.100:8001 = C0000264:1F41.
grep -q '^TCP  C0000264:1F41 rr' /proc/net/ip_vs || fail "/proc/net/ip_vs lacks C0000264:1F41 rr"
