# Real ldirectord and halb's import of its ldirectord.cf program the same
# IPVS table: masq with weights; wrr with an HTTP negotiate check and
# quiescent=no (a failed real server leaves the table: halb's on_down =
# "remove"); rr with a connect check and quiescent=yes (weight 0:
# "quiescent"); a fallback server (halb: fallback, fallback_forward) added,
# weight 1, when a service's only real server fails.
# needs: ldirectord
# import: ldirectord ldirectord-masq.cf
topo_nat 2
mkdir -p /tmp/case
rs_start() { equiv_serve "$1" 80 8080; } # TCP on 80, HTTP on 8080
rs_start 1; rs_start 2
equiv ldirectord ldirectord-masq.cf 2
