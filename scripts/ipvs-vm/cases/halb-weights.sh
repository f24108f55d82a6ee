# Weight changes by reload, with real traffic through a NAT wrr service:
# 1:1 then 3:1 then 1:3; each reload changes the weights in place.
topo_nat 2
serve 2
conf() { # W1 W2
  cat > $HALB_CONF <<CONF
[[virtual_service]]
name = "web"
data_plane = "ipvs"
listen = "$VIP:80"
scheduler = "wrr"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  weight = $1
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
  weight = $2
CONF
}
try() { # W1 W2 N WANT1 WANT2
  out=$(gets $3)
  echo "weights $1:$2: $(echo "$out" | tr '\n' ' ')"
  expect_eq "answers from r1 at $1:$2" "$(echo "$out" | count r1)" $4
  expect_eq "answers from r2 at $1:$2" "$(echo "$out" | count r2)" $5
}
conf 1 1
halb_start
halb_wait_ipvs "weights 1:1" "ipvs_table | grep -q '198.51.100.22:80 *Masq *1'"
try 1 1 4 2 2
conf 3 1
halb_reload
halb_wait_ipvs "weights 3:1" "ipvs_table | grep -q '198.51.100.21:80 *Masq *3'"
ipvs_table
try 3 1 8 6 2
conf 1 3
halb_reload
halb_wait_ipvs "weights 1:3" "ipvs_table | grep -q '198.51.100.22:80 *Masq *3'"
ipvs_table
ipvs_table | grep -q '198.51.100.21:80 *Masq *1' || fail "r1 is not weight 1"
try 1 3 8 2 6
halb list
halb list | grep -q '198.51.100.22:80 *Masq *3' || fail "halb list does not show r2 at weight 3"
