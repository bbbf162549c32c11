// Command chef-k8s is one binary for the local cluster of `make cluster`: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler of one Kubernetes release,
// and the real node's kubelet and kube-proxy, built from the Go module proxy. One link
// instead of six saves most of the cold build on a small CI machine (the kubelet shares
// most of its packages with the control plane).
//
// Usage: chef-k8s <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy> [flags...]
package main

import (
	"context"
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
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chef-k8s <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy> [flags...]")
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
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kube-proxy":
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	default:
		fmt.Fprintf(os.Stderr, "chef-k8s: unknown component %q (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy)\n", component)
		os.Exit(2)
	}
}
