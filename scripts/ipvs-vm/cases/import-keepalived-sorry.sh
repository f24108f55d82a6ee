# Real keepalived and halb's import of its keepalived.conf program the same
# IPVS table: a sorry server added when the service's only real server
# fails; inhibit_on_failure on one real server of a service (weight 0),
# the service's other real server is removed.
# Pending: halb has no fallback server for IPVS services nor a per-real-server
# on_down yet (the import reports both as unmapped).
# needs: keepalived
# import: keepalived keepalived-sorry.conf
topo_nat 2
mkdir -p /tmp/case
rs_start() { equiv_serve "$1" 80; }
rs_start 1; rs_start 2
equiv keepalived keepalived-sorry.conf 2
