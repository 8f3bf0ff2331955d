//go:build linux && !portable

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/keypair"
	"github.com/moat-dev/moat/internal/sshconfig"
	"github.com/moat-dev/moat/internal/statedir"
)

func init() { register(newSSHCommand) }

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

// localSSHConfig is the ssh_config of the stack running on this machine
// (moat ssh-config without --aws).
func localSSHConfig(c *cobra.Command, stack, file, identity string) (string, error) {
	_, _, cfg, err := sshFiles(c, stack, file, identity)
	return cfg, err
}
