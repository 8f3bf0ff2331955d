package sshconfig

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Access is everything an OpenSSH client needs to reach a running stack's
// instances through its bastion. The daemon serves it (api.GetSSHAccess);
// `moat ssh` and `moat ssh-config` render it.
type Access struct {
	Stack string `json:"stack"`
	// Bastion is the bastion's published loopback address.
	Bastion     netip.AddrPort `json:"bastion"`
	BastionUser string         `json:"bastionUser"`
	// KeyPair is the bastion's key pair name.
	KeyPair string `json:"keyPair"`
	// KnownHosts are known_hosts lines for the bastion (at Bastion) and
	// every instance (at its private address); see KnownHostsLine.
	KnownHosts []string         `json:"knownHosts"`
	Instances  []AccessInstance `json:"instances"`
}

// AccessInstance is one instance reachable through the bastion.
type AccessInstance struct {
	ID    string     `json:"id"`
	Group string     `json:"group,omitempty"`
	IP    netip.Addr `json:"ip"`
	Port  int        `json:"port,omitempty"` // default 22
	User  string     `json:"user"`
	// KeyPair is the launch template's key pair name.
	KeyPair string `json:"keyPair"`
}

// Resolve finds an instance by id or by 1-based index in Instances (the
// order `moat ps` lists them).
func (a *Access) Resolve(idOrIndex string) (AccessInstance, error) {
	for _, in := range a.Instances {
		if in.ID == idOrIndex {
			return in, nil
		}
	}
	if n, err := strconv.Atoi(idOrIndex); err == nil {
		if n < 1 || n > len(a.Instances) {
			return AccessInstance{}, fmt.Errorf("no instance with index %d: the stack has %d instance(s), numbered from 1", n, len(a.Instances))
		}
		return a.Instances[n-1], nil
	}
	return AccessInstance{}, fmt.Errorf("no instance %q: give an instance id or an index from moat ps", idOrIndex)
}

// BastionAlias is the ssh_config Host name of the stack's bastion.
func (a *Access) BastionAlias() string { return "moat-" + a.Stack + "-bastion" }

// Alias is the ssh_config Host name of an instance.
func (a *Access) Alias(in AccessInstance) string { return "moat-" + a.Stack + "-" + in.ID }

// Render renders the ssh_config for a: keyFile maps a key pair name to the
// private key file to use, knownHostsFile is where a.KnownHosts were
// written.
func (a *Access) Render(keyFile func(keyPair string) string, knownHostsFile string) string {
	cc := ClientConfig{
		BastionAlias: a.BastionAlias(), BastionAddr: a.Bastion, BastionUser: a.BastionUser,
		IdentityFile: keyFile(a.KeyPair), KnownHostsFile: knownHostsFile,
	}
	var ins []Instance
	for _, in := range a.Instances {
		comment := in.ID
		if in.Group != "" {
			comment += " (group " + in.Group + ")"
		}
		ins = append(ins, Instance{Alias: a.Alias(in), Addr: in.IP, Port: in.Port, User: in.User,
			IdentityFile: keyFile(in.KeyPair), Comment: comment})
	}
	return Render(cc, ins)
}

// KnownHostsFile is the content of a known_hosts file for a.
func (a *Access) KnownHostsFile() string {
	if len(a.KnownHosts) == 0 {
		return ""
	}
	return strings.Join(a.KnownHosts, "\n") + "\n"
}
