package sshconfig

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAccessResolveAndRender(t *testing.T) {
	a := &Access{
		Stack: "demo", Bastion: netip.MustParseAddrPort("127.0.0.1:2222"), BastionUser: "ec2-user", KeyPair: "ops",
		KnownHosts: []string{"[127.0.0.1]:2222 ssh-ed25519 AAAA", "10.0.1.10 ssh-ed25519 BBBB"},
		Instances: []AccessInstance{
			{ID: "i-0aaa", Group: "web", IP: netip.MustParseAddr("10.0.1.10"), User: "ec2-user", KeyPair: "app"},
			{ID: "i-0bbb", Group: "web", IP: netip.MustParseAddr("10.0.2.10"), User: "ec2-user", KeyPair: "app"},
		},
	}
	for _, tc := range []struct{ arg, id, err string }{
		{"i-0bbb", "i-0bbb", ""},
		{"1", "i-0aaa", ""},
		{"2", "i-0bbb", ""},
		{"0", "", "numbered from 1"},
		{"3", "", "has 2 instance(s)"},
		{"i-nope", "", "no instance \"i-nope\""},
	} {
		in, err := a.Resolve(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Resolve(%q) error %v, want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || in.ID != tc.id {
			t.Errorf("Resolve(%q) = %v, %v; want %s", tc.arg, in.ID, err, tc.id)
		}
	}
	keys := map[string]string{"ops": "/k/ops.pem", "app": "/k/my app.pem"}
	got := a.Render(func(n string) string { return keys[n] }, "/s/known_hosts")
	want := `# moat bastion
Host moat-demo-bastion
  HostName 127.0.0.1
  Port 2222
  User ec2-user
  IdentityFile /k/ops.pem
  IdentitiesOnly yes
  UserKnownHostsFile /s/known_hosts
  StrictHostKeyChecking yes
  ForwardAgent no
  ServerAliveInterval 30

# i-0aaa (group web)
Host moat-demo-i-0aaa
  HostName 10.0.1.10
  Port 22
  User ec2-user
  ProxyJump moat-demo-bastion
  IdentityFile "/k/my app.pem"
  IdentitiesOnly yes
  UserKnownHostsFile /s/known_hosts
  StrictHostKeyChecking yes
  ForwardAgent no
`
	if !strings.HasPrefix(got, want) {
		t.Errorf("rendered:\n%s\nwant prefix:\n%s", got, want)
	}
	if a.KnownHostsFile() != "[127.0.0.1]:2222 ssh-ed25519 AAAA\n10.0.1.10 ssh-ed25519 BBBB\n" {
		t.Errorf("known hosts %q", a.KnownHostsFile())
	}
	if args := SSHArgs("/s/cfg", "moat-demo-i-0aaa", []string{"uptime"}); strings.Join(args, " ") != "ssh -F /s/cfg moat-demo-i-0aaa -- uptime" {
		t.Errorf("SSHArgs = %q", args)
	}
}
