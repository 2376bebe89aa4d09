#!/usr/bin/env bash
# Records the raw distribution streams between two real OTP nodes through a proxy and
# writes them to tests/data/dist/<otp>/. Usage: capture.sh [erl binary dir] [out name]
# No EPMD is used (cap_epmd); ports are random high ones on 127.0.0.1.
set -eu
BIN=${1:-/usr/bin}
NAME=${2:-otp25}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$HERE/../../tests/data/dist/$NAME"
WORK=$(mktemp -d)
trap 'kill $PIDS 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
export ERL_CRASH_DUMP="$WORK/erl_crash.dump"
PIDS=""
mkdir -p "$OUT"
"$BIN/erlc" -o "$WORK" "$HERE"/*.erl
BASE=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000 ))
ACC_PORT=$BASE; PROXY_PORT=$((BASE + 1)); INI_PORT=$((BASE + 2))
SUFFIX=$$
HOST=$(hostname -s)
COMMON="-noshell -pa $WORK -start_epmd false -epmd_module cap_epmd -setcookie capture"
"$BIN/erl" $COMMON -sname "acc$SUFFIX" -kernel cap_listen_port $ACC_PORT -kernel cap_peer_port $PROXY_PORT \
    -eval 'sink:start()' > "$WORK/acc.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/erl" -noshell -pa "$WORK" -run proxy start $PROXY_PORT $ACC_PORT "$OUT" > "$WORK/proxy.log" 2>&1 &
PROXY=$!
PIDS="$PIDS $PROXY"
# wait (with a deadline) until the acceptor listens
i=0
until (exec 3<>/dev/tcp/127.0.0.1/$ACC_PORT) 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "acceptor did not start"; cat "$WORK/acc.log"; exit 1; }; sleep 0.1
done
"$BIN/erl" $COMMON -sname "ini$SUFFIX" -kernel cap_listen_port $INI_PORT -kernel cap_peer_port $PROXY_PORT \
    -run sender run "acc$SUFFIX@$HOST"
wait $PROXY || true
ls -l "$OUT"
