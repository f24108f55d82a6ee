# Real ldirectord and halb's import of its ldirectord.cf program the same
# IPVS table: a fallback server added when the service's only real server
# fails.
# Pending: halb has no fallback server for IPVS services yet (the import
# reports fallback as unmapped).
# needs: ldirectord
# import: ldirectord ldirectord-fallback.cf
topo_nat 2
mkdir -p /tmp/case
rs_start() { equiv_serve "$1" 80; }
rs_start 1; rs_start 2
equiv ldirectord ldirectord-fallback.cf 2
