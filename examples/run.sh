#!/usr/bin/env bash
# Runs the client examples (Node, Python, Go) against a sandbox of their own: it installs what they
# need (npm ci; Debian's grpcio, protobuf and protoc through apt-get), builds erasured, starts the
# sandbox on a free loopback port with its store, keys and master key in a temporary directory (the
# repository's var/ is not touched), waits until it is SERVING, runs the three examples at once
# (each erases a different demo subject), stops the sandbox with SIGTERM, and fails if any failed
# (showing the end of the sandbox's log). The sandbox ignores the caller's ERASURED_* variables, and
# nothing it starts outlives it.
#   examples/run.sh          (make examples)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "examples: installing needs root or sudo: $*" >&2; return 1
  fi
}

# The Python example uses Debian's packages and /usr/bin/python3 (not a pyenv or venv python).
apt_packages=()
[[ -x /usr/bin/protoc && -f /usr/include/google/protobuf/any.proto ]] || apt_packages+=(protobuf-compiler libprotobuf-dev)
[[ -x /usr/bin/grpc_python_plugin ]] || apt_packages+=(protobuf-compiler-grpc)
/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || apt_packages+=(python3-grpcio python3-protobuf)
command -v node >/dev/null && command -v npm >/dev/null || apt_packages+=(nodejs npm)
if ((${#apt_packages[@]})); then
  command -v apt-get >/dev/null || { echo "examples: need ${apt_packages[*]} and there is no apt-get to install them" >&2; exit 1; }
  echo "== installing ${apt_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
# npm ci deletes node_modules and installs it again: a second run.sh in this checkout waits for
# the lock (exclusive here, shared while the Node example runs) instead of pulling node_modules
# from under the first one's example.
echo "== npm ci (examples/node)"
(cd examples/node && flock -w 600 -x .npm-ci.lock npm ci --no-audit --no-fund --loglevel=error)

tmp=$(mktemp -d)
pid=
example_pids=()
cleanup() {
  # The examples and the sandbox run under timeout(1), which passes the signal on to them.
  for p in "${example_pids[@]}" $pid; do kill "$p" 2>/dev/null || true; done
  for p in "${example_pids[@]}" $pid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building erasured and the Go example; checking the google/rpc definitions"
go build -o "$tmp/erasured" ./cmd/erasured
(cd tools && go build -o "$tmp/grpc-health-probe" github.com/grpc-ecosystem/grpc-health-probe) # pinned in tools/go.mod
# The Go example's go.mod is tidy as committed: importing the gen module bumps neither its go
# line nor its grpc (tidy -diff fails if it would change anything).
(cd examples/go && go mod tidy -diff && go build -o "$tmp/go-example" .)
echo "   examples/go keeps go $(cd examples/go && go list -m -f '{{.GoVersion}}') and $(cd examples/go && go list -m google.golang.org/grpc)"

# The google/rpc definitions the Node and Python examples decode errors with have the wire
# format of those the server encodes them with.
/usr/bin/protoc -I third_party/googleapis -I /usr/include --include_imports -o "$tmp/rpc.binpb" \
  google/rpc/status.proto google/rpc/error_details.proto
go run ./examples/rpcwire "$tmp/rpc.binpb"

echo "== starting the sandbox"
mkdir "$tmp/sandbox"
# Run from the temporary directory: the sandbox puts its master key under ./var/, and its key
# directory beside --db. Without the caller's ERASURED_* variables: ERASURED_CONFIG would make it
# a configured server, ERASURED_LOG_LEVEL=warn would hide the line that gives its address.
# timeout: it cannot outlive this script by more than ten minutes, whatever happens to the script.
(cd "$tmp/sandbox" && unset "${!ERASURED_@}" && exec timeout 600 "$tmp/erasured" --listen 127.0.0.1:0 --db "$tmp/sandbox/erasure.db") >"$tmp/sandbox.log" 2>&1 &
pid=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*"msg":"erasured serving","listen":"\([^"]*\)".*/\1/p' "$tmp/sandbox.log")
  [[ -n $addr ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n $addr ]] || { echo "examples: the sandbox did not start:" >&2; cat "$tmp/sandbox.log" >&2; exit 1; }
for _ in $(seq 50); do
  "$tmp/grpc-health-probe" -addr="$addr" -service=erasure.v1.ErasureService >/dev/null 2>&1 && break
  sleep 0.2
done
"$tmp/grpc-health-probe" -addr="$addr" -service=erasure.v1.ErasureService
echo "   sandbox on $addr"

echo "== running the Node, Python and Go examples at once (about a minute)"
(cd examples/node && exec timeout 240 flock -w 60 -s .npm-ci.lock node erasure_client.js "$addr") >"$tmp/node.log" 2>&1 & node_pid=$!
(exec timeout 240 examples/python/run.sh "$addr") >"$tmp/python.log" 2>&1 & python_pid=$!
(exec timeout 240 "$tmp/go-example" "$addr") >"$tmp/go.log" 2>&1 & go_pid=$!
example_pids=("$node_pid" "$python_pid" "$go_pid")
failed=()
for example in node python go; do
  var=${example}_pid
  if wait "${!var}"; then rc=0; else rc=$?; fi
  echo
  echo "---- $example example (exit $rc)"
  cat "$tmp/$example.log"
  ((rc == 0)) || failed+=("$example")
done
example_pids=()
if ((${#failed[@]})); then
  echo
  echo "---- the sandbox's log, last 50 lines"
  tail -50 "$tmp/sandbox.log"
fi

echo
echo "== stopping the sandbox (SIGTERM)"
kill -TERM "$pid"
if wait "$pid"; then rc=0; else rc=$?; fi
pid=
if ((rc != 0)); then
  echo "examples: the sandbox exited $rc on SIGTERM:" >&2
  tail -20 "$tmp/sandbox.log" >&2
  failed+=(sandbox)
fi
if ((${#failed[@]})); then
  echo "examples: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "examples: node, python and go passed"
