package instance

import (
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/metadata"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestUserDataReadsInstanceMetadata runs an EC2-style user-data script
// (IMDSv2 with curl) against the metadata service served inside the
// instance's namespace.
func TestUserDataReadsInstanceMetadata(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl not installed; CI must install it (apt-get install curl)")
		}
		t.Skip("skipping: curl not installed (apt-get install curl)")
	}
	ns := testNS(t)
	ip := netip.MustParseAddr("10.0.11.9")
	h := metadata.New(func(a netip.Addr) (metadata.Info, bool) {
		return metadata.Info{InstanceID: "i-0000000000000abcd", LocalIPv4: ip, AvailabilityZone: "us-east-1b", Region: "us-east-1"}, a == ip
	}, nil)
	l, err := metadata.ListenInNamespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h.Pinned(ip), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { _ = srv.Serve(l); close(served) }()
	defer func() { srv.Close(); <-served }()

	s := spec(t, ns, `cat id.txt; curl -sf --max-time 5 http://169.254.169.254/latest/meta-data/placement/availability-zone; echo`)
	s.UserData = `#!/bin/sh
TOKEN=$(curl -sf --max-time 5 -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id > id.txt
echo >> id.txt
`
	in := start(t, s)
	waitExit(t, in)
	log := readLog(t, s)
	if !strings.Contains(log, "i-0000000000000abcd\nus-east-1b\n") {
		t.Fatalf("metadata not read by the instance; log:\n%s", log)
	}
}
