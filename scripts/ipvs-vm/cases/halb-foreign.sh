# Changes made with ipvsadm behind halb's back: a deleted real server, an
# added one, another scheduler and a deleted service are put back at the
# next apply (a reload), each a single edit, while a foreign service made
# after the start is left alone; with foreign = "remove" it goes.
topo_nat 3
serve 3
conf() { # FOREIGN [WEIGHT of r2]
  cat > $HALB_CONF <<CONF
[global]
data_plane = "ipvs"

[global.ipvs]
foreign = "$1"

[[virtual_service]]
name = "web"
listen = "$VIP:80"
scheduler = "rr"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
  weight = ${2:-1}
CONF
}
conf keep
halb_start
halb_wait_ipvs "both real servers" "ipvs_table | grep -q '198.51.100.22:80 *Masq *1'"
# halb's part of the table, sorted (ipvsadm -S lists in hash order).
mine() { ipvsadm -S -n | grep -v ':8080' | sort; }
before=$(mine)
run ipvsadm -d -t $VIP:80 -r 198.51.100.22:80
run ipvsadm -a -t $VIP:80 -r 198.51.100.23:80 -m -w 5
run ipvsadm -E -t $VIP:80 -s wlc
run ipvsadm -A -t $VIP:8080 -s rr
run ipvsadm -a -t $VIP:8080 -r 198.51.100.23:80 -m
ipvs_table
halb_reload
halb_wait_ipvs "halb's table restored" "[ \"\$(mine)\" = \"\$before\" ]"
ipvs_table
ipvs_table | grep -q "^TCP  $VIP:8080 rr" || fail "the foreign service $VIP:8080 was touched"
out=$(gets 4)
echo "$out" | tr '\n' ' '; echo
expect_eq "answers from r1" "$(echo "$out" | count r1)" 2
expect_eq "answers from r2" "$(echo "$out" | count r2)" 2
expect_eq "answers from r3 (the stray real server)" "$(echo "$out" | count r3)" 0
# The whole managed service deleted behind halb's back.
run ipvsadm -D -t $VIP:80
halb_reload
halb_wait_ipvs "the deleted service restored" "[ \"\$(mine)\" = \"\$before\" ]"
# Same config again: nothing to do, the table stays as it is.
out=$(halb reload) || fail "halb reload failed"
echo "$out"
echo "$out" | grep -q "no changes" || fail "a reload of the same config reported changes: $out"
expect_eq "table after a no-change reload" "$(mine)" "$before"
# A reload whose change meets a change behind halb's back: r2 deleted with
# ipvsadm, then a reload that gives r2 weight 3. The edit sent from halb's
# model of the table is refused; the reload then reads the table and
# answers with what that finds: r2 back with its new weight, no error.
run ipvsadm -d -t $VIP:80 -r 198.51.100.22:80
conf keep 3
out=$(halb reload --socket "$HALB_SOCK" 2>&1) || fail "halb reload failed after a change behind its back: $out"
echo "$out"
ipvs_table | grep -q '198.51.100.22:80 *Masq *3' || fail "r2 not back with weight 3 when the reload answered: $(ipvs_table)"
conf keep
halb_reload
halb_wait_ipvs "r2's weight 1 again" "[ \"\$(mine)\" = \"\$before\" ]"
# foreign = "remove": the foreign service goes, halb's stays.
conf remove
halb_reload
halb_wait_ipvs "the foreign service removed" "! ipvs_table | grep -q ':8080'"
expect_eq "halb's table after removing the foreign one" "$(ipvsadm -S -n | sort)" "$before"
