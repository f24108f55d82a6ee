# Real ldirectord and halb's import of its ldirectord.cf program the same
# IPVS table: gate (direct routing) with persistence /24 and an HTTP
# negotiate check on another port, ipip (tunnel) with weights and a connect
# check, both quiescent=yes (weight 0: halb's on_down = "quiescent"); a
# firewall-mark service over ipip with quiescent=no ("remove").
# needs: ldirectord
# import: ldirectord ldirectord-gate-ipip.cf
topo_dr 2
mkdir -p /tmp/case
rs_start() { equiv_serve "$1" 80 8080; } # TCP on 80, HTTP on 8080
rs_start 1; rs_start 2
equiv ldirectord ldirectord-gate-ipip.cf 2
