// Command coredns is CoreDNS with only the plugins the local cluster's DNS uses (the Corefile in
// scripts/cluster/manifests/coredns.yaml): kubernetes, cache, errors, health, ready. Upstream's
// main links all 50-odd plugins and their cloud SDKs; this one compiles in a fraction of the time
// on a small CI machine and is the same server.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
