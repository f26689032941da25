#!/usr/bin/env bash
# Black-box smoke test of Dompet on a MongoDB wire-protocol server, from outside, with curl.
#
# Starts the nx-27017 server (a test-only stand-in: not a replica set, hence
# MONGODB_ALLOW_STANDALONE=1) on a free port, runs `make run` against it on another free port,
# calls routes of both APIs, checks the answers, runs `dompet reconcile`, then stops both
# servers (by PID). Usage: bash scripts/mongo_smoke.sh     (or MONGO_URL=... for a real server)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=.venv/bin/python
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dompet-mongo-smoke.XXXXXX")"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
NX_PID="" RUN_PID=""
cleanup() {
    [ -n "$RUN_PID" ] && kill -- "-$RUN_PID" 2>/dev/null || true
    [ -n "$NX_PID" ] && kill "$NX_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${MONGO_URL:-}" ]; then
    NX_PORT="$(free_port)"
    mkdir -p "$WORK/data"
    .venv/bin/nx-27017 --host 127.0.0.1 --port "$NX_PORT" --data-dir "$WORK/data" \
        --log-file "$WORK/nx.log" --pid-file "$WORK/nx.pid" >"$WORK/nx.out" 2>&1 &
    NX_PID=$!
    MONGO_URL="mongodb://127.0.0.1:$NX_PORT/dompet?directConnection=true"
    export MONGODB_ALLOW_STANDALONE=1
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$NX_PORT") 2>/dev/null && break; sleep 0.1; done
fi
API_PORT="$(free_port)"
B="http://127.0.0.1:$API_PORT"
DATABASE_URL="$MONGO_URL" setsid make run PORT="$API_PORT" >"$WORK/run.log" 2>&1 &
RUN_PID=$!
for _ in $(seq 120); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.5; done

fail() { echo "FAIL: $*" >&2; cat "$WORK/run.log" >&2; exit 1; }
J='content-type: application/json'
expect() {  # expect <http-status> <substring> <curl args...>
    local want="$1" needle="$2"; shift 2
    local out code
    out="$(curl -s -w '\n%{http_code}' "$@")"
    code="${out##*$'\n'}"; out="${out%$'\n'*}"
    [ "$code" = "$want" ] || fail "$* -> HTTP $code (want $want): $out"
    [[ "$out" == *"$needle"* ]] || fail "$* -> $out (want '$needle')"
    echo "ok $code $*" | cut -c1-110
    LAST="$out"
}
field() { "$PY" -c "import sys, json; d = json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$LAST" "$1"; }

expect 200 '"database":"mongodb"' "$B/healthz"
expect 200 '"first_name":"Guntur"' -XPOST "$B/register" -H "$J" \
    -d '{"first_name":"Guntur","last_name":"Saputro","phone_number":"0811255501","address":"Jl. Kebon Sirih No. 1","pin":"123456"}'
expect 409 'Phone Number already registered' -XPOST "$B/register" -H "$J" \
    -d '{"first_name":"G","last_name":"","phone_number":"0811255501","address":"","pin":"123456"}'
expect 200 '"first_name":"Tom"' -XPOST "$B/register" -H "$J" \
    -d '{"first_name":"Tom","last_name":"Araya","phone_number":"0811255502","address":"","pin":"654321"}'
TOM="$(field 'd["result"]["user_id"]')"
expect 200 access_token -XPOST "$B/login" -H "$J" -d '{"phone_number":"0811255501","pin":"123456"}'
H="Authorization: Bearer $(field 'd["result"]["access_token"]')"
expect 200 '"balance_after":500000' -XPOST "$B/topup" -H "$J" -H "$H" -H 'Idempotency-Key: k1' -d '{"amount":500000}'
expect 200 '"balance_after":500000' -XPOST "$B/topup" -H "$J" -H "$H" -H 'Idempotency-Key: k1' -d '{"amount":500000}'
expect 200 '"balance_after":400000' -XPOST "$B/pay" -H "$J" -H "$H" -d '{"amount":100000,"remarks":"Pulsa Telkomsel 100k"}'
expect 400 'Balance is not enough' -XPOST "$B/pay" -H "$J" -H "$H" -d '{"amount":900000,"remarks":"x"}'
expect 200 '"balance_after":370000' -XPOST "$B/transfer" -H "$J" -H "$H" \
    -d "{\"target_user\":\"$TOM\",\"amount\":30000,\"remarks\":\"Hadiah Ultah\"}"
for _ in $(seq 40); do
    curl -s "$B/transactions" -H "$H" | grep -q '"transfer_id"[^}]*"status":"SUCCESS"' && break
    sleep 0.25
done
expect 200 '"status":"SUCCESS","user_id"' "$B/transactions" -H "$H"
expect 200 '"address":"Jl. Baru"' -XPUT "$B/profile" -H "$J" -H "$H" -d '{"address":"Jl. Baru"}'
expect 400 'pin' -XPUT "$B/profile" -H "$J" -H "$H" -d '{"pin":"111111"}'
expect 401 'Unauthenticated' "$B/transactions"
expect 200 '"no_rekening"' -XPOST "$B/daftar" -H "$J" -d '{"nama":"Siti","nik":"3171234567890001","no_hp":"081234567890"}'
NO="$(field 'd["no_rekening"]')"
expect 400 'nik' -XPOST "$B/daftar" -H "$J" -d '{"nama":"Siti","nik":"3171234567890001","no_hp":"081234567899"}'
expect 200 '{"saldo":100000}' -XPOST "$B/tabung" -H "$J" -d "{\"no_rekening\":\"$NO\",\"nominal\":100000}"
expect 200 '{"saldo":70000}' -XPOST "$B/tarik" -H "$J" -d "{\"no_rekening\":\"$NO\",\"nominal\":30000}"
expect 400 'remark' -XPOST "$B/tarik" -H "$J" -d "{\"no_rekening\":\"$NO\",\"nominal\":300000}"
expect 200 '{"saldo":70000}' "$B/saldo/$NO"
expect 200 '"kode_transaksi":"D"' "$B/mutasi/$NO"
expect 400 'remark' "$B/saldo/1234567890"
DATABASE_URL="$MONGO_URL" .venv/bin/dompet reconcile
echo "mongo smoke: all checks passed"
