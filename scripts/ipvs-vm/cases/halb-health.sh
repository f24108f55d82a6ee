# Health checks drive the kernel's table: a real server whose TCP check
# fails gets weight 0 (on_down = "quiescent") and, after a reload with
# on_down = "remove", is deleted; when it answers again it comes back.
topo_nat 2
serve 2
conf() { # ON_DOWN
  cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"
on_down = "$1"

[[virtual_service]]
name = "checked"
listen = "$VIP:80"
scheduler = "rr"
check = { type = "tcp", interval = "200ms", timeout = "1s", rise = 1, fall = 1 }
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  weight = 2
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
  weight = 2
CONF
}
conf quiescent
halb_start
halb_wait_ipvs "both real servers up" "[ \$(ipvs_table | grep -c 'Masq *2') = 2 ]"
ipvs_table
kill $SERVE_PID_2
halb_wait_ipvs "r2 quiescent after its check failed" "ipvs_table | grep -q '198.51.100.22:80 *Masq *0'"
ipvs_table
out=$(gets 4)
expect_eq "answers from r1 while r2 is down" "$(echo "$out" | count r1)" 4
serve_one 2
halb_wait_ipvs "r2 back to weight 2" "ipvs_table | grep -q '198.51.100.22:80 *Masq *2'"
conf remove
halb_reload
kill $SERVE_PID_2
halb_wait_ipvs "r2 deleted after its check failed" "! ipvs_table | grep -q '198.51.100.22:80'"
ipvs_table
ipvs_table | grep -q '198.51.100.21:80 *Masq *2' || fail "r1 lost its weight"
serve_one 2
halb_wait_ipvs "r2 added back" "ipvs_table | grep -q '198.51.100.22:80 *Masq *2'"
out=$(gets 4)
expect_eq "answers from r2 once it is back" "$(echo "$out" | count r2)" 2
