// Command chef-k8s is one binary for the local control plane of `make cluster`:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler of one Kubernetes
// release, built from the Go module proxy. One link instead of four saves most of
// the cold build on a small CI machine.
//
// Usage: chef-k8s <etcd|kube-apiserver|kube-controller-manager|kube-scheduler> [flags...]
package main

import (
	"fmt"
	"os"
	_ "time/tzdata" // CronJob time zones, as upstream's mains import it

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chef-k8s <etcd|kube-apiserver|kube-controller-manager|kube-scheduler> [flags...]")
		os.Exit(2)
	}
	component := os.Args[1]
	// Each upstream main reads os.Args as if it were the only program: drop our dispatch word.
	os.Args = append([]string{component}, os.Args[2:]...)
	switch component {
	case "etcd":
		etcdmain.Main(os.Args)
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	default:
		fmt.Fprintf(os.Stderr, "chef-k8s: unknown component %q (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)\n", component)
		os.Exit(2)
	}
}
