#!/usr/bin/env bash
# Redirect benchmark: `GET /r/<code>` on Sarafan beside nginx answering a
# bare `return 302`, same machine, same run, same wrk settings; then Sarafan
# is stopped gracefully and the clicks in its database are counted against
# the requests wrk made.
#
#   bash bench/redirect.sh                 # 4 threads, 64 connections, 15 s each
#   THREADS=2 CONNECTIONS=128 DURATION=30s bash bench/redirect.sh
#
# Needs nginx, wrk and sqlite3 (installed from Debian packages if missing)
# and builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-4}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-15s}
SARAFAN_PORT=${SARAFAN_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}

missing=()
for tool in nginx wrk sqlite3 curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# nginx lives in /usr/sbin, which a non-login shell may not have on PATH.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --locked -q -p sarafan
BIN=$PWD/target/release/sarafan

WORK=$(mktemp -d)
SARAFAN_PID=""
NGINX_PID=""
cleanup() {
  [[ -n $SARAFAN_PID ]] && kill "$SARAFAN_PID" 2>/dev/null || true
  [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

DB="sqlite://$WORK/bench.db"
export SARAFAN_LOG_FORMAT=text RUST_LOG=warn

# A program with one member and their referral code, through the CLI and the API.
KEY=$("$BIN" program create --database-url "$DB" --name "Bench Coffee" --currency RUB | sed -n 's/^admin API key (shown once): //p')
"$BIN" serve --database-url "$DB" --listen "127.0.0.1:$SARAFAN_PORT" --public-url "http://127.0.0.1:$SARAFAN_PORT" \
  >"$WORK/sarafan.log" 2>&1 &
SARAFAN_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$SARAFAN_PORT/readyz" >/dev/null && break; sleep 0.1; done
API="http://127.0.0.1:$SARAFAN_PORT/api/v1"
MEMBER=$(curl -fs -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"email":"anna@example.com","name":"Anna"}' "$API/members" | sed 's/.*"id":"\([^"]*\)".*/\1/')
CODE=$(curl -fs -H "Authorization: Bearer $KEY" "$API/members/$MEMBER/referral" | sed 's/.*"code":"\([^"]*\)".*/\1/')
echo "referral code $CODE of member $MEMBER"

# nginx: a bare 302 with a Location, nothing else.
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { return 302 http://127.0.0.1:$SARAFAN_PORT/join?ref=$CODE; }
  }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
sleep 0.5

run_wrk() { # name url -> prints wrk's output, leaves it in $WORK/$name.txt
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2" | tee "$WORK/$1.txt"
}
requests() { sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/$1.txt"; }
rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$WORK/$1.txt"; }
non3xx() { sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$WORK/$1.txt"; }

echo "== nginx: return 302"
run_wrk nginx "http://127.0.0.1:$NGINX_PORT/r/$CODE"
echo "== sarafan: GET /r/$CODE"
run_wrk sarafan "http://127.0.0.1:$SARAFAN_PORT/r/$CODE?ch=bench"

# Graceful stop: the click writer drains before the process exits.
kill -TERM "$SARAFAN_PID"
wait "$SARAFAN_PID" || true
SARAFAN_PID=""
SENT=$(requests sarafan)
BAD=$(non3xx sarafan)
RECORDED=$(sqlite3 "$WORK/bench.db" "SELECT COUNT(*) FROM referral_clicks WHERE channel = 'bench'")
NGINX_RATE=$(rate nginx)
SARAFAN_RATE=$(rate sarafan)
RATIO=$(awk -v s="$SARAFAN_RATE" -v n="$NGINX_RATE" 'BEGIN { printf "%.2f", s / n }')

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, loopback, $(nproc) cores"
echo "nginx   return 302:   $NGINX_RATE requests/s"
echo "sarafan GET /r/code:  $SARAFAN_RATE requests/s  (${RATIO}x nginx)"
echo "sarafan requests:     $SENT completed${BAD:+, $BAD not 302}"
echo "clicks recorded:      $RECORDED"
# wrk counts completed responses; a request cut off when wrk stops may have
# been recorded without wrk seeing its answer, so recorded >= completed.
if ((RECORDED >= SENT)); then
  echo "every answered click was recorded ($((RECORDED - SENT)) more in flight when wrk stopped)"
else
  echo "LOST $((SENT - RECORDED)) clicks" >&2
  exit 1
fi
