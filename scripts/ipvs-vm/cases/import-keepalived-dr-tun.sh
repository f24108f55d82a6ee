# Real keepalived and halb's import of its keepalived.conf program the same
# IPVS table: direct routing with wrr, persistence /24 and HTTP_GET on
# another port; an IPIP tunnel for firewall mark 7 (sh, persistence) with
# TCP_CHECK on port 80. A failed real server leaves both (no
# inhibit_on_failure: halb's on_down = "remove"), but for the one real
# server with its own inhibit_on_failure (weight 0: its on_down =
# "quiescent").
# needs: keepalived
# import: keepalived keepalived-dr-tun.conf
topo_dr 2
mkdir -p /tmp/case
rs_start() { equiv_serve "$1" 80 8080; } # TCP on 80, HTTP on 8080
rs_start 1; rs_start 2
equiv keepalived keepalived-dr-tun.conf 2
