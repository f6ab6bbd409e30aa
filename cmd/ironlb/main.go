// Command ironlb is the single binary of ironlb: one image runs both the controller and the
// speaker, chosen by the first argument, or by the program name /speaker or /controller, which
// takes MetalLB's flags (see metallb.go).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `ironlb — a bare-metal LoadBalancer for Kubernetes

Usage:
  ironlb controller [flags]        assign LoadBalancer IPs from the configured pools
  ironlb speaker [flags]           announce assigned IPs by layer 2 (ARP/NDP) or BGP
  ironlb config validate [-f FILE] check a MetalLB-format ConfigMap (FILE "-" reads stdin)
  ironlb status [-o json]          per Service: IP, pool, protocol, announcing node(s) and why
  ironlb version                   print the version

Run "ironlb <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	var code int
	// Started as MetalLB's /speaker or /controller (the images for MetalLB's own manifests).
	if cmd := metallbCommand(os.Args[0]); cmd != "" {
		code = runMetalLB(ctx, cmd, os.Args[1:], os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "controller":
		return runController(ctx, args[1:], stderr)
	case "speaker":
		return runSpeaker(ctx, args[1:], stderr)
	case "config":
		if len(args) < 2 || args[1] != "validate" {
			fmt.Fprint(stderr, "usage: ironlb config validate [-f FILE]\n")
			return 2
		}
		return runConfigValidate(args[2:], stdin, stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "ironlb %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "ironlb: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"
