//go:build linux && !portable

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/targetgroup"
)

func init() { register(newLBCommand) }

func newLBCommand() *cobra.Command {
	var (
		listen, healthPath, metrics, algo string
		https, tlsCert, tlsKey            string
		targets                           []string
		interval                          time.Duration
		accessLog                         bool
		cpuProfile                        string
	)
	c := &cobra.Command{
		Use:   "lb [--listen ADDR] [--https ADDR [--tls-cert FILE --tls-key FILE]] --target ADDR [--target ADDR...]",
		Short: "Run the load balancer on its own in front of the given addresses",
		Long: `Run the load balancer on its own in front of the given addresses: an HTTP
listener on --listen and, with --https, an HTTPS listener (HTTP/2 and
HTTP/1.1 by ALPN) with the certificate in --tls-cert/--tls-key, or a
generated self-signed one for localhost and 127.0.0.1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(targets) == 0 {
				return withCode(exitUsage, fmt.Errorf("moat lb: at least one --target is needed"))
			}
			if listen == "" && https == "" {
				return withCode(exitUsage, fmt.Errorf("moat lb: nothing to listen on: give --listen, --https or both"))
			}
			if (tlsCert == "") != (tlsKey == "") {
				return withCode(exitUsage, fmt.Errorf("moat lb: --tls-cert and --tls-key go together: give both PEM files, or neither for a self-signed certificate"))
			}
			if tlsCert != "" && https == "" {
				return withCode(exitUsage, fmt.Errorf("moat lb: --tls-cert needs an HTTPS listener: add --https ADDR"))
			}
			var listeners []lb.Listener
			fwd := lb.Action{Type: lb.ActionForward, Forward: []lb.WeightedGroup{{TargetGroup: "default"}}}
			if listen != "" {
				if err := loopbackAddr("--listen", listen); err != nil {
					return withCode(exitUsage, err)
				}
				listeners = append(listeners, lb.Listener{Name: "http", Address: listen, Protocol: "HTTP", DefaultAction: fwd})
			}
			if https != "" {
				if err := loopbackAddr("--https", https); err != nil {
					return withCode(exitUsage, err)
				}
				listeners = append(listeners, lb.Listener{Name: "https", Address: https, Protocol: "HTTPS",
					CertFile: tlsCert, KeyFile: tlsKey, DefaultAction: fwd})
			}
			if metrics != "" {
				if err := loopbackAddr("--metrics", metrics); err != nil {
					return withCode(exitUsage, err)
				}
			}
			cfg := lb.Config{
				TargetGroups: []targetgroup.Config{{Name: "default", Algorithm: targetgroup.Algorithm(algo),
					DeregistrationDelay: -1,
					HealthCheck:         targetgroup.HealthCheck{Path: healthPath, Interval: interval, HealthyThreshold: 2}}},
				Listeners: listeners,
			}
			opts := lb.Options{Log: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "lb")}
			if accessLog {
				opts.AccessLog = os.Stdout
			}
			e, err := lb.New(cfg, opts)
			if err != nil {
				return withCode(exitUsage, err)
			}
			defer e.Close()
			for _, t := range targets {
				if err := e.Register("default", t); err != nil {
					return err
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("create cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("start cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if metrics != "" {
				ml, err := net.Listen("tcp", metrics)
				if err != nil {
					return fmt.Errorf("listen for metrics on %s: %w", metrics, err)
				}
				defer ml.Close()
				go e.ServeMetrics(ml)
			}
			for _, l := range listeners {
				fmt.Fprintf(os.Stderr, "moat lb: %s on %s, %d targets\n", l.Protocol, l.Address, len(targets))
			}
			return e.ListenAndServe(ctx)
		},
	}
	f := c.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:18090", "address of the HTTP listener (\"\" for none)")
	f.StringVar(&https, "https", "", "address of an HTTPS listener (HTTP/2 and HTTP/1.1)")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate (chain) of the HTTPS listener; default a self-signed one")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringSliceVar(&targets, "target", nil, "target address host:port (repeatable)")
	f.StringVar(&healthPath, "health-path", "/", "health check path")
	f.DurationVar(&interval, "health-interval", 5*time.Second, "health check interval")
	f.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this loopback address")
	f.StringVar(&algo, "algorithm", "round_robin", "round_robin, least_outstanding_requests or weighted_random")
	f.BoolVar(&accessLog, "access-log", false, "write JSON-lines access logs to stdout")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	f.MarkHidden("cpuprofile")
	return c
}

// loopbackAddr refuses a listen address outside loopback: moat publishes
// only on 127.0.0.0/8 or ::1, as the stack file's local: addresses.
func loopbackAddr(flag, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("moat lb: %s %q: want HOST:PORT on loopback, e.g. 127.0.0.1:18090", flag, addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("moat lb: %s %q is not a loopback address: moat listens only on 127.0.0.0/8 or ::1 (e.g. 127.0.0.1:18090)", flag, addr)
}
