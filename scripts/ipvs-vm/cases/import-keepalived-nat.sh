# Real keepalived and halb's import of its keepalived.conf program the same
# IPVS table: NAT, rr and wlc, weights, TCP_CHECK and HTTP_GET; the service
# without inhibit_on_failure removes a failed real server (halb: on_down =
# "remove"), the one with it keeps it at weight 0 ("quiescent").
# needs: keepalived
# import: keepalived keepalived-nat.conf
topo_nat 2
mkdir -p /tmp/case
rs_start() { # K: TCP on 80, HTTP on 8080 (/health)
  serve_one "$1" 80
  mkdir -p "/tmp/case/www$1"; echo ok > "/tmp/case/www$1/health"
  $IP netns exec "r$1" httpd -f -p 8080 -h "/tmp/case/www$1" &
  wait_for "r$1's HTTP server" "nsx r$1 netstat -ltn | grep -q ':8080 '"
}
rs_kill() { for p in $($IP netns pids "r$1"); do kill "$p"; done; }
rs_start 1; rs_start 2
equiv keepalived keepalived-nat.conf 2
