#!/usr/bin/env bash
# lb-tls-compare.sh - moat, nginx and haproxy terminating TLS side by side.
#
# Each load balancer terminates HTTPS (TLS 1.3, TLS_AES_128_GCM_SHA256, the
# same ECDSA P-256 certificate) and proxies plain HTTP/1.1 with upstream
# keep-alive, round robin, to two stdlib Go backends (127.0.0.2:9001,
# 127.0.0.3:9001, GOMAXPROCS=1). wrk -t2 -c64 holds 64 keep-alive client
# connections (handshakes only at the start). As in the HTTP comparison
# (scripts/bench/lb-compare.sh), wrk runs on CPU $CLIENT_CPU and the LB
# plus both backends on CPU $SERVER_CPU, so req/s measures how much of that
# one core the LB takes, and LB CPU µs per request comes from /proc. moat's
# plain HTTP listener is measured in the same run as a reference (moat-http).
# The target list is repeated ROUNDS times, interleaved; medians are printed.
#
# Needs: wrk nginx haproxy openssl curl taskset timeout ss, Go, and bin/moat
# (built from this checkout when missing). On Debian/Ubuntu:
#   sudo apt-get update && sudo apt-get install -y wrk nginx haproxy openssl curl
# It is a benchmark, not a test: run it by hand, on an otherwise quiet machine.
#
# Usage: scripts/bench/lb-tls-compare.sh           (~2 min)
# Knobs: ROUNDS [3] DUR [5] WARMUP [2] CONNS [64] WRK_THREADS [2] PIN [1]
#        CLIENT_CPU [0] SERVER_CPU [1] BASE_PORT [18440] TARGETS
#        ["nginx haproxy moat moat-http"] MOAT [bin/moat] KEEP=1 keeps the
#        scratch dir. Every process runs under timeout (MAX_LIFE [900] s) and
#        is stopped by PID; all traffic stays on 127.0.0.0/8.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH="/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
PIN=${PIN:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
BASE_PORT=${BASE_PORT:-18440}
TARGETS=${TARGETS:-"nginx haproxy moat moat-http"}
MOAT=${MOAT:-$ROOT/bin/moat}
KEEP=${KEEP:-0}
MAX_LIFE=${MAX_LIFE:-900}
B1=127.0.0.2:9001
B2=127.0.0.3:9001
CLK_TCK=$(getconf CLK_TCK)
T_START=$(date +%s)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for t in wrk nginx haproxy openssl curl taskset timeout ss go; do
	command -v "$t" >/dev/null || die "missing tool: $t (sudo apt-get install -y wrk nginx haproxy openssl curl; Go from go.dev)"
done

RUN=$(mktemp -d /tmp/lb-tls.XXXXXX)
declare -a TPIDS=()
cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${TPIDS[@]}"; do stop_pid "$p"; done
	if [[ $KEEP == 1 ]]; then log "scratch dir kept: $RUN"; else rm -rf "$RUN"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

server_cpu() { [[ $PIN == 1 ]] && echo "taskset -c $SERVER_CPU" || true; }
client_cpu() { [[ $PIN == 1 ]] && echo "taskset -c $CLIENT_CPU" || true; }

# stop_pid PID: TERM the timeout wrapper (it relays to the daemon), KILL
# after 8 s.
stop_pid() {
	local p=$1 i
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	for i in $(seq 1 80); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

# start NAME CMD...: run CMD pinned, under timeout; sets TPID and PID (the
# daemon's own pid, for CPU accounting).
start() {
	local name=$1 i
	shift
	# shellcheck disable=SC2046
	timeout -k 5 "$MAX_LIFE" $(server_cpu) "$@" >"$RUN/$name.log" 2>&1 &
	TPID=$!
	TPIDS+=("$TPID")
	PID=""
	for i in $(seq 1 50); do
		PID=$(ps -o pid= --ppid "$TPID" 2>/dev/null | head -1 | tr -d ' ' || true)
		[[ -n $PID ]] && break
		sleep 0.05
	done
	[[ -n $PID ]] || { cat "$RUN/$name.log" >&2; die "$name did not start"; }
}

stop() {
	stop_pid "$1"
	local keep=() p
	for p in "${TPIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	TPIDS=("${keep[@]}")
}

port_free() { ! ss -Hltn "sport = :${1##*:}" | awk '{print $4}' | grep -qE "^(${1%:*}|0\.0\.0\.0|\*|\[::\]):${1##*:}\$"; }

wait_200() { # URL NAME
	local i
	for i in $(seq 1 150); do
		curl -sk -o /dev/null -m 1 -w '%{http_code}' "$1" 2>/dev/null | grep -q '^200$' && return 0
		sleep 0.1
	done
	cat "$RUN/$2.log" >&2 || true
	die "$2 does not answer 200 at $1"
}

tree() { local c; echo "$1"; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; done; }
jiffies() { # PID... -> utime+stime of the pids and their children
	local total=0 r p j
	for r in "$@"; do
		for p in $(tree "$r"); do
			j=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
			total=$((total + ${j:-0}))
		done
	done
	echo "$total"
}

to_us() {
	awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); printf "%d", v}
		else if (v ~ /ms$/) {sub(/ms$/,"",v); printf "%d", v*1000}
		else if (v ~ /s$/) {sub(/s$/,"",v); printf "%d", v*1000000} else printf "-1"}'
}

# --- setup --------------------------------------------------------------------

log "building the backend and moat"
(cd "$ROOT/scripts/bench/backend" && go build -o "$RUN/backend" .) || die "backend build failed"
[[ -x $MOAT ]] || (cd "$ROOT" && CGO_ENABLED=0 go build -o "$MOAT" ./cmd/moat) || die "moat build failed"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$RUN/key.pem" -out "$RUN/cert.pem" 2>/dev/null
cat "$RUN/cert.pem" "$RUN/key.pem" >"$RUN/haproxy.pem"
mkdir -p "$RUN/nginx-tmp"

cat >"$RUN/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
pid $RUN/nginx.pid;
error_log $RUN/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $RUN/nginx-tmp/body;
    proxy_temp_path $RUN/nginx-tmp/proxy;
    fastcgi_temp_path $RUN/nginx-tmp/fastcgi;
    uwsgi_temp_path $RUN/nginx-tmp/uwsgi;
    scgi_temp_path $RUN/nginx-tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
    ssl_session_cache shared:SSL:1m;
    upstream be {
        server $B1;
        server $B2;
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$((BASE_PORT + 1)) ssl backlog=4096;
        ssl_certificate $RUN/cert.pem;
        ssl_certificate_key $RUN/key.pem;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX

cat >"$RUN/haproxy.cfg" <<HAPROXY
global
    maxconn 4096
    nbthread 1
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:$((BASE_PORT + 2)) ssl crt $RUN/haproxy.pem alpn http/1.1
    default_backend be
backend be
    balance roundrobin
    server b1 $B1 maxconn 1000
    server b2 $B2 maxconn 1000
HAPROXY

for hp in "$B1" "$B2" 127.0.0.1:$((BASE_PORT + 1)) 127.0.0.1:$((BASE_PORT + 2)) 127.0.0.1:$((BASE_PORT + 3)) 127.0.0.1:$((BASE_PORT + 4)); do
	port_free "$hp" || die "$hp is in use (set BASE_PORT)"
done
GOMAXPROCS=1 start be1 "$RUN/backend" -addr "$B1" -name b1; BE1=$PID
GOMAXPROCS=1 start be2 "$RUN/backend" -addr "$B2" -name b2; BE2=$PID
wait_200 "http://$B1/health" be1
wait_200 "http://$B2/health" be2

start_lb() { # NAME -> URL, TPID, PID
	case $1 in
	nginx) start nginx nginx -e "$RUN/nginx-error.log" -p "$RUN" -c "$RUN/nginx.conf"; URL=https://127.0.0.1:$((BASE_PORT + 1))/ ;;
	haproxy) start haproxy haproxy -db -f "$RUN/haproxy.cfg"; URL=https://127.0.0.1:$((BASE_PORT + 2))/ ;;
	moat) start moat "$MOAT" lb --listen "" --https 127.0.0.1:$((BASE_PORT + 3)) --tls-cert "$RUN/cert.pem" --tls-key "$RUN/key.pem" \
		--target "$B1" --target "$B2" --health-path /health --health-interval 5s; URL=https://127.0.0.1:$((BASE_PORT + 3))/ ;;
	moat-http) start moat-http "$MOAT" lb --listen 127.0.0.1:$((BASE_PORT + 4)) \
		--target "$B1" --target "$B2" --health-path /health --health-interval 5s; URL=http://127.0.0.1:$((BASE_PORT + 4))/ ;;
	*) die "unknown target $1" ;;
	esac
	wait_200 "$URL" "$1"
}

# tls_of URL -> the protocol and cipher the LB negotiates with an OpenSSL client
tls_of() {
	[[ $1 == https://* ]] || { echo "-"; return; }
	local hp=${1#https://}
	hp=${hp%/}
	timeout 5 openssl s_client -connect "$hp" -brief </dev/null 2>&1 |
		awk -F': ' '/Protocol version/{p=$2} /Ciphersuite/{c=$2} END{print p "/" c}'
}

rr_of() {
	local i
	for i in $(seq 1 20); do curl -sk -m 2 -o /dev/null -D - "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-backend"{print $2}'; done |
		sort | uniq -c | awk '{printf "%s%s=%s", (NR>1?",":""), $2, $1}'
}

TSV="$RUN/results.tsv"
printf 'round\ttarget\treqs\trps\tp50_us\tp99_us\terrors\tlb_us_per_req\tbe_us_per_req\ttls\trr\n' >"$TSV"

measure() { # ROUND NAME
	local round=$1 name=$2 out="$RUN/wrk-$2-$1.txt" tls rr c0 c1 b0 b1 reqs rps p50 p99 errs lbus beus
	start_lb "$name"
	tls=$(tls_of "$URL")
	rr=$(rr_of "$URL")
	# shellcheck disable=SC2046
	timeout $((WARMUP + 20)) $(client_cpu) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$URL" >/dev/null 2>&1 || true
	c0=$(jiffies "$PID"); b0=$(jiffies "$BE1" "$BE2")
	# shellcheck disable=SC2046
	timeout $((DUR + 20)) $(client_cpu) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DUR}s" --latency "$URL" >"$out" 2>&1 || true
	c1=$(jiffies "$PID"); b1=$(jiffies "$BE1" "$BE2")
	reqs=$(awk '/requests in/{print $1}' "$out")
	rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
	p50=$(to_us "$(awk '$1=="50%"{print $2}' "$out")")
	p99=$(to_us "$(awk '$1=="99%"{print $2}' "$out")")
	errs=$(awk '/Socket errors/{for (i=1; i<=NF; i++) if ($i ~ /^[0-9]+,?$/) n+=$i+0} /Non-2xx/{n+=$NF} END{print n+0}' "$out")
	lbus=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="${reqs:-0}" 'BEGIN{if(n>0) printf "%.1f", d/hz*1e6/n; else print "-"}')
	beus=$(awk -v d=$((b1 - b0)) -v hz="$CLK_TCK" -v n="${reqs:-0}" 'BEGIN{if(n>0) printf "%.1f", d/hz*1e6/n; else print "-"}')
	stop "$TPID"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "${reqs:-0}" "${rps:-0}" "$p50" "$p99" "$errs" "$lbus" "$beus" "$tls" "$rr" >>"$TSV"
	log "[$name r$round] req/s=$rps p50=${p50}us p99=${p99}us errs=$errs LB µs/req=$lbus BE µs/req=$beus $tls rr=$rr"
}

cat <<INFO
== lb-tls-compare $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
host: $(uname -r), $(nproc) cpu ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)
versions: $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'); $(nginx -v 2>&1 | sed 's|nginx version: nginx/|nginx |'); $(haproxy -v | head -1 | awk '{print "haproxy", $3}'); $(openssl version | awk '{print $1, $2}'); $(go version | awk '{print $3}')
config: PIN=$PIN (wrk on cpu $CLIENT_CPU; LB + backends on cpu $SERVER_CPU) wrk -t$WRK_THREADS -c$CONNS -d${DUR}s (warmup ${WARMUP}s) x $ROUNDS rounds; one LB worker/thread
INFO

for round in $(seq 1 "$ROUNDS"); do
	for t in $TARGETS; do measure "$round" "$t"; done
done

echo
echo "req/s, p50, p99: wrk closed loop (saturating). LBus/rq: LB CPU µs per request; BEus/rq: backends' (host-speed canary)."
echo "Medians over $ROUNDS round(s); spr%: (max-min)/median of req/s."
awk -F'\t' '
NR==1 {next}
{ n=$2; if (!(n in seen)) {seen[n]=1; order[++k]=n}
  c=++cnt[n]; rps[n,c]=$4; p50[n,c]=$5; p99[n,c]=$6; err[n]+=$7; lbu[n,c]=$8; beu[n,c]=$9; tls[n]=$10; rr[n]=$11 }
function med(a, n, c,   i, j, t, v, m) { m=0; for (i=1; i<=c; i++) if (a[n,i]!="-" && a[n,i]!="") v[++m]=a[n,i]+0
	if (!m) return "-"; for (i=1; i<=m; i++) for (j=i+1; j<=m; j++) if (v[j]<v[i]) {t=v[i]; v[i]=v[j]; v[j]=t}
	return (m%2) ? v[(m+1)/2] : (v[m/2]+v[m/2+1])/2 }
function spread(a, n, c,   i, lo, hi, x, m) { lo=""; hi=""; for (i=1; i<=c; i++) {x=a[n,i]+0; if (lo==""||x<lo) lo=x; if (hi==""||x>hi) hi=x}
	m=med(a, n, c); return (c<2 || m<=0) ? "-" : sprintf("%.0f", (hi-lo)/m*100) }
END {
	for (i=1; i<=k; i++) mr[order[i]]=med(rps, order[i], cnt[order[i]])
	ng=("nginx" in mr) ? mr["nginx"] : ""
	printf "%-10s %8s %6s %6s %5s %7s %7s %7s %4s %-26s %s\n", "target", "req/s", "p50ms", "p99ms", "errs", "/nginx", "LBus/rq", "BEus/rq", "spr%", "tls", "rr"
	for (i=1; i<=k; i++) { n=order[i]
		printf "%-10s %8.0f %6.2f %6.2f %5d %7s %7s %7s %4s %-26s %s\n", n, mr[n], med(p50,n,cnt[n])/1000, med(p99,n,cnt[n])/1000, err[n],
			(ng!="" && ng>0) ? sprintf("%.2f", mr[n]/ng) : "-", med(lbu,n,cnt[n]), med(beu,n,cnt[n]), spread(rps,n,cnt[n]), tls[n], rr[n] }
	if (("moat" in mr) && ng!="") {
		ok = (mr["moat"] >= ng) && (med(lbu,"moat",cnt["moat"]) <= med(lbu,"nginx",cnt["nginx"]))
		printf "\ngoal (moat HTTPS req/s >= nginx and LB µs/request <= nginx): %s\n", ok ? "met" : "NOT met"
	}
}' "$TSV"
echo "per-round rows: $(cp "$TSV" "/tmp/lb-tls-compare-$(date +%Y%m%d-%H%M%S).tsv" && ls -t /tmp/lb-tls-compare-*.tsv | head -1)"
echo "elapsed: $(($(date +%s) - T_START)) s; loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
