#!/bin/sh
# Builds, tests and generates the Go client offline, against the Go modules Debian packages
# under /usr/share/gocode/src (see README.md for why this is GOPATH mode and what to install).
#
#   clients/go/offline.sh build OUT        build cmd/example into OUT
#   clients/go/offline.sh build-loadgen OUT  build cmd/loadgen (the bench's load generator)
#   clients/go/offline.sh test             go vet + go test of the hand-written packages
#   clients/go/offline.sh build-tests OUT  the switchboard package's test binary, into OUT
#   clients/go/offline.sh generate         regenerate switchboardv1/ from protos/
#   clients/go/offline.sh check-generated  fail when switchboardv1/ is stale
#
# SWITCHBOARD_GO_WORK (default: <repo>/.tools/go) holds the GOPATH link and the build cache.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
module=github.com/switchboard/switchboard/clients/go
work=${SWITCHBOARD_GO_WORK:-$repo/.tools/go}
debian=${SWITCHBOARD_GOCODE:-/usr/share/gocode}

gopath() {
  mkdir -p "$work/gopath/src/$(dirname "$module")"
  ln -sfn "$here" "$work/gopath/src/$module"
  export GO111MODULE=off GOPATH="$work/gopath:$debian" GOCACHE="$work/cache" GOFLAGS="" \
    GOPROXY=off GOTOOLCHAIN=local
  cd "$work/gopath/src/$module"
}

generate() {
  out=$1
  mkdir -p "$out"
  protoc -I "$repo/protos" \
    --go_out="$out" --go_opt=module=$module \
    --go-grpc_out="$out" --go-grpc_opt=module=$module \
    "$repo"/protos/switchboard/v1/*.proto
}

case "${1:-}" in
  build)
    mkdir -p "$(dirname "${2:?usage: offline.sh build OUT}")"
    out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    gopath
    go build -o "$out" "$module/cmd/example"
    ;;
  build-loadgen)
    mkdir -p "$(dirname "${2:?usage: offline.sh build-loadgen OUT}")"
    out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    gopath
    go build -o "$out" "$module/cmd/loadgen"
    ;;
  test)
    gopath
    go vet "$module/switchboard" "$module/cmd/example" "$module/cmd/loadgen"
    go test "$module/switchboard"
    ;;
  build-tests)
    mkdir -p "$(dirname "${2:?usage: offline.sh build-tests OUT}")"
    out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    gopath
    go test -c -o "$out" "$module/switchboard"
    ;;
  generate)
    rm -rf "$here/switchboardv1"
    generate "$here"
    ;;
  check-generated)
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    generate "$scratch"
    diff -r "$here/switchboardv1" "$scratch/switchboardv1" >/dev/null || {
      echo "clients/go/switchboardv1 is stale: run 'make generate-clients' and commit the result" >&2
      exit 1
    }
    ;;
  *)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac
