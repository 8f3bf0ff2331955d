package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/sshconfig"
)

func init() { register(newSSHConfigCommand) }

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
			cfg, err := localSSHConfig(c, stack, file, identity)
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
