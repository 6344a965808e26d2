#!/usr/bin/env bash
# Generates the Python code of erasured's protos (and of the protovalidate rules and the google/rpc
# error details they need) into a temporary directory, then runs erasure_client.py against ADDR.
# It uses Debian's packages only:
#   apt-get install -y python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
# and Debian's /usr/bin/python3, which sees them (a pyenv or venv python does not).
#   examples/python/run.sh [ADDR]       (ADDR defaults to ERASURED_ADDR or 127.0.0.1:50051)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
for f in /usr/bin/protoc /usr/bin/grpc_python_plugin /usr/include/google/protobuf/any.proto; do
  [[ -e $f ]] || { echo "missing $f: apt-get install -y python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The same three include dirs as every client, and Debian's copy of the well-known types.
/usr/bin/protoc -I "$repo/proto" -I "$repo/third_party/protovalidate" -I "$repo/third_party/googleapis" -I /usr/include \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  --python_out="$out" --grpc_python_out="$out" \
  erasure/v1/erasure.proto erasure/v1/plan.proto erasure/v1/service.proto erasure/v1/subject.proto \
  buf/validate/validate.proto google/rpc/status.proto google/rpc/error_details.proto
# Not exec: this shell has to outlive python3 for its EXIT trap to remove the generated code.
PYTHONPATH="$out" /usr/bin/python3 "$here/erasure_client.py" "$@"
