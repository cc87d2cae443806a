module github.com/switchboard/switchboard/clients/go

go 1.19

// The versions the offline build (offline.sh, GOPATH mode over Debian's packages) uses.
// go.sum is not committed: it cannot be computed offline. With network access, run
// `go mod tidy` once to resolve the indirect requirements and write it.
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
