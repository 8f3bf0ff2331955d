// Package sshconfig renders what an OpenSSH client needs to reach a
// stack's instances through its bastion: ssh_config Host blocks with
// ProxyJump, known_hosts content and the ssh command line. It is the client
// side (moat ssh, moat ssh-config); the servers are bastion and
// instancessh.
package sshconfig

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ClientConfig is what an OpenSSH client needs to reach a stack's
// instances through its bastion.
type ClientConfig struct {
	// BastionAlias is the Host name of the bastion block, e.g.
	// "moat-mystack-bastion".
	BastionAlias string
	// BastionAddr is the bastion's published address (127.0.0.1:2222).
	BastionAddr netip.AddrPort
	// BastionUser is the login name on the bastion (ec2-user).
	BastionUser string
	// IdentityFile is the private key for the bastion (and the default
	// for instances).
	IdentityFile string
	// KnownHostsFile holds the host keys of the bastion and instances.
	// Empty means the keys are not known ahead (instances on AWS): the
	// user's known_hosts is used and a new host's key is accepted once
	// (StrictHostKeyChecking accept-new), a changed one refused.
	KnownHostsFile string
}

// Instance is one SSH destination behind the bastion.
type Instance struct {
	// Alias is the Host name, e.g. "moat-mystack-i-0abc" or
	// "moat-mystack-web-1".
	Alias string
	// Addr is the instance's private IP address.
	Addr netip.Addr
	// Port defaults to 22.
	Port int
	// User is the login name on the instance.
	User string
	// IdentityFile overrides ClientConfig.IdentityFile when the launch
	// template uses another key pair.
	IdentityFile string
	// Comment is written above the block (e.g. the instance id).
	Comment string
}

// quote quotes a value for ssh_config when needed.
func quote(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\"'#") {
		return strconv.Quote(v)
	}
	return v
}

// Render renders OpenSSH client configuration: one Host block
// for the bastion and one per instance that jumps through it (ProxyJump),
// with the key, known_hosts file and strict host key checking set, for
// ~/.ssh/config or for `ssh -F FILE`.
func Render(c ClientConfig, instances []Instance) string {
	var b strings.Builder
	common := func(identity string) {
		fmt.Fprintf(&b, "  IdentityFile %s\n", quote(identity))
		b.WriteString("  IdentitiesOnly yes\n")
		if c.KnownHostsFile != "" {
			fmt.Fprintf(&b, "  UserKnownHostsFile %s\n", quote(c.KnownHostsFile))
			b.WriteString("  StrictHostKeyChecking yes\n")
		} else {
			b.WriteString("  StrictHostKeyChecking accept-new\n")
		}
		b.WriteString("  ForwardAgent no\n")
	}
	fmt.Fprintf(&b, "# moat bastion\nHost %s\n", c.BastionAlias)
	fmt.Fprintf(&b, "  HostName %s\n", c.BastionAddr.Addr())
	fmt.Fprintf(&b, "  Port %d\n", c.BastionAddr.Port())
	if c.BastionUser != "" {
		fmt.Fprintf(&b, "  User %s\n", quote(c.BastionUser))
	}
	common(c.IdentityFile)
	b.WriteString("  ServerAliveInterval 30\n")
	for _, in := range instances {
		b.WriteString("\n")
		if in.Comment != "" {
			fmt.Fprintf(&b, "# %s\n", strings.ReplaceAll(in.Comment, "\n", " "))
		}
		fmt.Fprintf(&b, "Host %s\n", in.Alias)
		fmt.Fprintf(&b, "  HostName %s\n", in.Addr)
		port := in.Port
		if port == 0 {
			port = 22
		}
		fmt.Fprintf(&b, "  Port %d\n", port)
		if in.User != "" {
			fmt.Fprintf(&b, "  User %s\n", quote(in.User))
		}
		fmt.Fprintf(&b, "  ProxyJump %s\n", c.BastionAlias)
		id := in.IdentityFile
		if id == "" {
			id = c.IdentityFile
		}
		common(id)
	}
	return b.String()
}

// SSHArgs is the argv (starting with "ssh") that runs command on the
// instance with Host alias, using configuration written by
// Render to configPath. -F is passed on to the jump, so the
// bastion's key and known_hosts apply there too. An empty command opens
// an interactive shell.
func SSHArgs(configPath, alias string, command []string) []string {
	args := []string{"ssh", "-F", configPath}
	if len(command) == 0 {
		return append(args, alias)
	}
	return append(append(args, alias, "--"), command...)
}

// HostPort is addr:port as OpenSSH and net.Dial write it.
func HostPort(addr netip.Addr, port int) string {
	return net.JoinHostPort(addr.String(), strconv.Itoa(port))
}
