package bastion_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/moat-dev/moat/internal/bastion"
	"github.com/moat-dev/moat/internal/instancessh"
	"github.com/moat-dev/moat/internal/keypair"
	"github.com/moat-dev/moat/internal/sshconfig"
	"github.com/moat-dev/moat/internal/sshpolicy"
)

// Example shows how `moat up` wires the bastion and an instance's SSH
// endpoint. dialFromBastionNS, allowedBySecurityGroups and the listeners
// come from the network and security group code.
func Example() {
	ctx := context.Background()
	stateDir := os.TempDir()

	store, _ := keypair.Open(keypair.DefaultDir())
	_, _, _ = store.Ensure("ops", keypair.ED25519, "") // the stack's key pair
	keys, _ := store.PublicKeys("ops")

	hostKey, _ := keypair.LoadOrCreateHostKey(filepath.Join(stateDir, "bastion", "ssh_host_ed25519_key"))
	audit, _ := os.OpenFile(filepath.Join(stateDir, "bastion", "audit.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	b, _ := bastion.New(bastion.Config{
		HostKey:        hostKey,
		AuthorizedKeys: sshpolicy.NewKeySet(keys...),
		User:           "ec2-user",
		// Dial from the bastion's namespace, so the destination's
		// security groups decide.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, fmt.Errorf("dialFromBastionNS(%s)", addr)
		},
		// Refuse clearly instead of letting the dial time out.
		Policy: func(dst netip.AddrPort) error {
			return fmt.Errorf("security group sg-app does not allow the bastion on tcp/%d", dst.Port())
		},
		Audit: audit,
	})
	published, _ := net.Listen("tcp", "127.0.0.1:0") // the bastion's published port
	go b.Serve(ctx, published)

	// On each instance: a listener opened inside its namespace on :22.
	instHost, _ := keypair.LoadOrCreateHostKey(filepath.Join(stateDir, "i-0abc", "ssh_host_ed25519_key"))
	srv, _ := instancessh.New(instancessh.Config{
		HostKey:        instHost,
		AuthorizedKeys: sshpolicy.NewKeySet(keys...), // the launch template's key pair
		User:           "ec2-user",
		Dir:            filepath.Join(stateDir, "i-0abc"),
		Env:            []string{"PORT=8080"},
	})
	ln22, _ := net.Listen("tcp", "127.0.0.1:0") // in moat up: opened in the instance namespace
	go srv.Serve(ctx, ln22)

	// The daemon serves this (api.GetSSHAccess) for moat ssh / ssh-config.
	_ = sshconfig.Access{
		Stack: "demo", Bastion: published.Addr().(*net.TCPAddr).AddrPort(), BastionUser: "ec2-user", KeyPair: "ops",
		KnownHosts: []string{
			b.KnownHostsLine(published.Addr().String()),
			sshpolicy.KnownHostsLine("10.0.1.10:22", instHost.PublicKey()),
		},
		Instances: []sshconfig.AccessInstance{{ID: "i-0abc", IP: netip.MustParseAddr("10.0.1.10"), User: "ec2-user", KeyPair: "ops"}},
	}
}
