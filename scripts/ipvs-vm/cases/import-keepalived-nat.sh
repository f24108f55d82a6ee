# Real keepalived and halb's import of its keepalived.conf program the same
# IPVS table: NAT, rr and wlc, weights, TCP_CHECK and HTTP_GET; the service
# without inhibit_on_failure removes a failed real server (halb: on_down =
# "remove"), the one with it keeps it at weight 0 ("quiescent"); a
# sorry_server (halb: fallback, fallback_forward) added, weight 1, when a
# service's only real server fails.
# needs: keepalived
# import: keepalived keepalived-nat.conf
topo_nat 2
mkdir -p /tmp/case
rs_start() { equiv_serve "$1" 80 8080; } # TCP on 80, HTTP on 8080
rs_start 1; rs_start 2
equiv keepalived keepalived-nat.conf 2
