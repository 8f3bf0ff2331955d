package metadata_test

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/moat-dev/moat/internal/metadata"
)

// How the daemon serves instance metadata inside each instance namespace.
func Example() {
	byIP := map[netip.Addr]metadata.Info{} // kept up to date by the daemon
	h := metadata.New(func(ip netip.Addr) (metadata.Info, bool) {
		info, ok := byIP[ip] // guard with a mutex in real code
		return info, ok
	}, nil)

	ip := netip.MustParseAddr("10.0.11.5")
	byIP[ip] = metadata.Info{InstanceID: "i-0123456789abcdef0", LocalIPv4: ip,
		AvailabilityZone: "us-east-1a", Region: "us-east-1", AMIID: "ami-moat", InstanceType: "t3.micro",
		UserData: "#!/bin/sh\n..."}

	l, err := metadata.ListenInNamespace("/run/netns/moat-web-i-0123456789abcdef0")
	if err != nil {
		return
	}
	srv := &http.Server{Handler: h.Pinned(ip), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	// On terminate: srv.Close(), delete(byIP, ip).
}
