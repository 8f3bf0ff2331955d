//go:build linux && !portable

package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/keypair"
	"github.com/moat-dev/moat/internal/sshconfig"
	"github.com/moat-dev/moat/internal/statedir"
)

func init() {
	register(newSSHCommand)
	register(newSSHConfigCommand)
}

// sshFiles fetches the stack's SSH access from the daemon and writes its
// known_hosts and ssh_config under $MOAT_HOME/ssh/STACK; it returns the
// access description and the ssh_config path.
func sshFiles(c *cobra.Command, stack, file, identity string) (*sshconfig.Access, string, string, error) {
	cl, _, err := connect(c.Context(), stack, file)
	if err != nil {
		return nil, "", "", err
	}
	acc, err := cl.SSHAccess(c.Context())
	if err != nil {
		return nil, "", "", fmt.Errorf("get ssh access: %w", err)
	}
	if !acc.Bastion.IsValid() {
		return nil, "", "", withCode(exitNotFound, fmt.Errorf("stack %s has no bastion: add one to the stack file", acc.Stack))
	}
	store, err := keypair.Open(keypair.DefaultDir())
	if err != nil {
		return nil, "", "", err
	}
	var keyErr error
	reported := map[string]bool{}
	keyFile := func(name string) string {
		if identity != "" {
			return identity
		}
		kp, err := store.Get(name)
		if reported[name] {
			return ""
		}
		if err != nil || kp.PrivateKeyPath == "" {
			reported[name] = true
		}
		if err != nil {
			keyErr = errors.Join(keyErr, fmt.Errorf("%w: create or import it, or pass -i PRIVATE_KEY", err))
			return ""
		}
		if kp.PrivateKeyPath == "" {
			keyErr = errors.Join(keyErr, fmt.Errorf("key pair %s was imported, so moat does not know its private key: pass -i PRIVATE_KEY", name))
		}
		return kp.PrivateKeyPath
	}
	dir := filepath.Join(statedir.Home(), "ssh", acc.Stack)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", "", err
	}
	kh := filepath.Join(dir, "known_hosts")
	cfg := acc.Render(keyFile, kh)
	if keyErr != nil {
		return nil, "", "", withCode(exitUsage, keyErr)
	}
	if err := os.WriteFile(kh, []byte(acc.KnownHostsFile()), 0o600); err != nil {
		return nil, "", "", err
	}
	cfgPath := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, "", "", err
	}
	return &acc, cfgPath, cfg, nil
}

func newSSHCommand() *cobra.Command {
	var file, stack, identity string
	c := &cobra.Command{
		Use:   "ssh ID|INDEX [-- CMD...]",
		Short: "SSH into an instance through the bastion with the system's OpenSSH client",
		Long: `Runs ssh with ProxyJump through the stack's bastion, the key pairs'
private keys (moat keypair create wrote them) and a known_hosts file with the
bastion's and instances' host keys. INDEX counts from 1 in moat ps order.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if n := c.ArgsLenAtDash(); n > 1 {
				return withCode(exitUsage, errors.New("give one instance, then -- and the command"))
			} else if n == 0 {
				return withCode(exitUsage, errors.New("give the instance before --: moat ssh ID|INDEX -- CMD"))
			}
			acc, cfgPath, _, err := sshFiles(c, stack, file, identity)
			if err != nil {
				return err
			}
			target := args[0]
			if _, err := strconv.Atoi(target); err == nil {
				// INDEX counts in moat ps order, as terminate and logs count.
				cl, _, err := connect(c.Context(), stack, file)
				if err != nil {
					return err
				}
				if target, err = instanceID(c, cl, target); err != nil {
					return err
				}
			}
			in, err := acc.Resolve(target)
			if err != nil {
				if target != args[0] {
					err = fmt.Errorf("instance %s (%s) is not running; see moat ps", args[0], target)
				}
				return withCode(exitNotFound, err)
			}
			argv := sshconfig.SSHArgs(cfgPath, acc.Alias(in), args[1:])
			path, err := exec.LookPath("ssh")
			if err != nil {
				return fmt.Errorf("run ssh: %w (install openssh-client)", err)
			}
			return syscall.Exec(path, argv, os.Environ())
		},
	}
	stackFlags(c, &file, &stack)
	c.Flags().StringVarP(&identity, "identity", "i", "", "private key to use (needed for imported key pairs)")
	return c
}

func newSSHConfigCommand() *cobra.Command {
	var file, stack, identity string
	var onAWS bool
	var af awsFlags
	c := &cobra.Command{
		Use:   "ssh-config",
		Short: "Print an OpenSSH Host block for the bastion and each instance (for ~/.ssh/config)",
		Long: `Prints OpenSSH client configuration: a Host block for the bastion and one per
instance that jumps through it (ProxyJump), with the key pair's private key.

With --aws it describes the stack deployed by moat deploy instead of the local one:
the bastion's public address and the private addresses of the groups' instances,
found through EC2 and Auto Scaling, with the keys the file's key pairs name
(~/.ssh/NAME for a key EC2 generated, as the stack's PrivateKeyCommand output
saves it; the private half of publicKeyFile for an imported one; -i overrides).
Host keys are accepted the first time (StrictHostKeyChecking accept-new).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if onAWS {
				af.file, af.stackName = file, stack
				return awsSSHConfig(c, &af, identity)
			}
			_, _, cfg, err := sshFiles(c, stack, file, identity)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.OutOrStdout(), cfg)
			return err
		},
	}
	stackFlags(c, &file, &stack)
	c.Flags().StringVarP(&identity, "identity", "i", "", "private key to use (needed for imported key pairs)")
	c.Flags().BoolVar(&onAWS, "aws", false, "describe the stack deployed on AWS (moat deploy) instead of the local one")
	c.Flags().StringVar(&af.region, "region", "", "with --aws: AWS region (default: the stack file's aws.region)")
	c.Flags().StringVar(&af.profile, "profile", "", "with --aws: AWS profile (default: $AWS_PROFILE, then default)")
	c.Flags().StringVar(&af.endpoint, "endpoint-url", "", "send AWS calls to this URL (testing)")
	_ = c.Flags().MarkHidden("endpoint-url")
	return c
}

// awsSSHConfig prints Host blocks for the stack deployed on AWS.
func awsSSHConfig(c *cobra.Command, af *awsFlags, identity string) error {
	p, name, region, err := af.target(c.ErrOrStderr(), true)
	if err != nil {
		return err
	}
	d, err := af.deployer(c.Context(), c, region, true, "")
	if err != nil {
		return awsErr(err)
	}
	b, hosts, err := d.SSHHosts(c.Context(), name)
	if err != nil {
		return awsErr(err)
	}
	if p.Bastion == nil || b == nil {
		return withCode(exitNotFound, fmt.Errorf("stack %s in %s has no running bastion: add one to the stack file and deploy", name, region))
	}
	if !b.PublicIP.IsValid() {
		return withCode(exitNotFound, fmt.Errorf("the bastion %s of stack %s has no public address (is it in a public subnet?)", b.ID, name))
	}
	keyFile := func(keyPair string) string {
		if identity != "" {
			return identity
		}
		for _, kp := range p.KeyPairs {
			if kp.Name == keyPair && kp.PublicKeyFile != "" {
				return strings.TrimSuffix(kp.PublicKeyFile, ".pub")
			}
		}
		return "~/.ssh/" + keyPair
	}
	cc := sshconfig.ClientConfig{BastionAlias: name + "-bastion", BastionAddr: netip.AddrPortFrom(b.PublicIP, 22),
		BastionUser: p.Bastion.User, IdentityFile: keyFile(p.Bastion.KeyPair)}
	var ins []sshconfig.Instance
	for _, h := range hosts {
		in := sshconfig.Instance{Alias: name + "-" + h.ID, Addr: h.PrivateIP, User: "ec2-user", Comment: h.ID}
		for _, g := range p.AutoScalingGroups {
			if !logicalIs(h.Group, "AutoScalingGroup", g.Name) {
				continue
			}
			in.Comment += " (group " + g.Name + ")"
			for _, lt := range p.LaunchTemplates {
				if lt.Name == g.LaunchTemplate && lt.KeyPair != "" {
					in.IdentityFile = keyFile(lt.KeyPair)
				}
			}
		}
		if h.PrivateIP.IsValid() {
			ins = append(ins, in)
		}
	}
	_, err = fmt.Fprint(c.OutOrStdout(), sshconfig.Render(cc, ins))
	return err
}
