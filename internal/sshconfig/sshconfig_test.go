package sshconfig

import (
	"net/netip"
	"strings"
	"testing"
)

// With a known_hosts file (a local stack, whose host keys moat knows) the
// configuration pins it; without one (instances on AWS, whose keys nobody
// knows ahead) a new host is accepted once and a changed key refused.
func TestRenderHostKeys(t *testing.T) {
	ins := []Instance{{Alias: "s-i-1", Addr: netip.MustParseAddr("10.0.128.5"), User: "ec2-user"}}
	cc := ClientConfig{BastionAlias: "s-bastion", BastionAddr: netip.MustParseAddrPort("198.51.100.7:22"), BastionUser: "ec2-user", IdentityFile: "~/.ssh/ops", KnownHostsFile: "/tmp/kh"}
	local := Render(cc, ins)
	if strings.Count(local, "StrictHostKeyChecking yes\n") != 2 || strings.Count(local, "UserKnownHostsFile /tmp/kh\n") != 2 || strings.Contains(local, "accept-new") {
		t.Errorf("with a known_hosts file:\n%s", local)
	}
	cc.KnownHostsFile = ""
	aws := Render(cc, ins)
	if strings.Count(aws, "StrictHostKeyChecking accept-new\n") != 2 || strings.Contains(aws, "UserKnownHostsFile") {
		t.Errorf("without one:\n%s", aws)
	}
	for _, want := range []string{"Host s-bastion\n  HostName 198.51.100.7\n  Port 22\n  User ec2-user\n  IdentityFile ~/.ssh/ops\n", "Host s-i-1\n  HostName 10.0.128.5\n  Port 22\n  User ec2-user\n  ProxyJump s-bastion\n"} {
		if !strings.Contains(aws, want) {
			t.Errorf("lacks %q:\n%s", want, aws)
		}
	}
}
