# A kernel without IPVS: halb says so once (load ip_vs, or choose the proxy)
# and its userspace services keep running. Then, with IPVS back but the
# lblcr scheduler missing, the kernel's error names the service.
for m in $(grep '^ip_vs' /etc/halbvm/modules | sed '1!G;h;$!d'); do run rmmod $m; done
[ -e /proc/net/ip_vs ] && fail "ip_vs is still loaded"
nc -ll -p 18081 -e /bin/echo proxied &
wait_for "the back end" "netstat -ltn | grep -q ':18081 '"
cat > $HALB_CONF <<CONF
[[virtual_service]]
name = "kernel-web"
data_plane = "ipvs"
listen = "$VIP:80"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"

[[virtual_service]]
name = "user-web"
listen = "127.0.0.1:8080"
  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
CONF
halb_start
cat /tmp/case/halb.log
grep -qi 'ip_vs' /tmp/case/halb.log || fail "no message about loading ip_vs"
grep -q 'kernel-web' /tmp/case/halb.log || fail "the message does not name the IPVS service"
expect_eq "the proxy service's answer" "$(nc -w 3 127.0.0.1 8080 </dev/null)" proxied
kill $HALB_PID; wait $HALB_PID
# IPVS back, without the lblcr scheduler.
for m in $(grep '^ip_vs' /etc/halbvm/modules | grep -v lblcr); do run insmod /lib/modules/$m.ko; done
sed -i 's/^listen = "192.0.2.100:80"/&\nscheduler = "lblcr"/' $HALB_CONF
halb_start
cat /tmp/case/halb.log
grep -q 'kernel-web' /tmp/case/halb.log || fail "the kernel error does not name the service"
expect_eq "the proxy service's answer" "$(nc -w 3 127.0.0.1 8080 </dev/null)" proxied
run insmod /lib/modules/ip_vs_lblcr.ko
halb_reload
halb_wait_ipvs "the lblcr service once the module is there" "ipvs_table | grep -q '^TCP  $VIP:80 lblcr'"
