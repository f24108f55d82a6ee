# Every kernel scheduler, programmed by halb, carries real traffic (NAT):
# rr and wrr alternate as weighted, sh and dh keep one client on one real
# server, fo and ovf send everything to the heavier one; the others answer.
topo_nat 2
serve 2
{
echo '[global]'
echo 'data_plane = "ipvs"'
port=9000
for s in rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh; do
  port=$((port + 1))
  w2=1; [ $s = wrr ] || [ $s = fo ] || [ $s = ovf ] && w2=3
  printf '\n[[virtual_service]]\nlisten = "%s:%s"\nscheduler = "%s"\n' $VIP $port $s
  printf '  [[virtual_service.real_server]]\n  address = "198.51.100.21:80"\n  forward = "masq"\n  weight = 1\n'
  printf '  [[virtual_service.real_server]]\n  address = "198.51.100.22:80"\n  forward = "masq"\n  weight = %s\n' $w2
done
} > $HALB_CONF
halb_start
halb_wait_ipvs "13 services" "[ \$(ipvs_table | grep -c '^TCP') = 13 ]"
port=9000
for s in rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh; do
  port=$((port + 1))
  ipvs_table | grep -q "^TCP  $VIP:$port $s\$" || fail "$VIP:$port is not $s"
  out=$(gets 4 $VIP $port)
  a1=$(echo "$out" | count r1); a2=$(echo "$out" | count r2)
  echo "$s: r1 $a1, r2 $a2"
  expect_eq "$s: answered requests" "$((a1 + a2))" 4
  case $s in
    rr) expect_eq "rr: answers from r1" "$a1" 2 ;;
    wrr) expect_eq "wrr 1:3: answers from r2" "$a2" 3 ;;
    fo|ovf) expect_eq "$s: answers from the heavier r2" "$a2" 4 ;;
    sh|dh|lblc|mh) [ "$a1" = 4 ] || [ "$a2" = 4 ] || fail "$s spread one client over two real servers" ;;
  esac
done
