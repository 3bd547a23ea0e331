// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 for the loopback control
// plane. The server module has replace lines, so `go install` cannot build it directly; this main
// lets the wrapper module in scripts/controlplane-build.sh build it with the Kubernetes binaries.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
