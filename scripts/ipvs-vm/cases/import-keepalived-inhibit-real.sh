# Real keepalived and halb's import of its keepalived.conf program the same
# IPVS table: inhibit_on_failure on one real server only (weight 0 when it
# fails; the service's other real server would be removed).
# Pending: halb has on_down per service only (the import reports the real
# server's inhibit_on_failure as unmapped).
# needs: keepalived
# import: keepalived keepalived-inhibit-real.conf
topo_nat 2
mkdir -p /tmp/case
rs_start() { equiv_serve "$1" 80; }
rs_start 1; rs_start 2
equiv keepalived keepalived-inhibit-real.conf 2
